"""Human-readable views of a project's state: the CLI table and the issue status comment."""

from __future__ import annotations

from somas_action.core import names, untrusted
from somas_action.core.domain import State

_ICONS = {
    names.STAGE_PENDING: "⏳",
    names.STAGE_IN_PROGRESS: "🔄",
    names.STAGE_RETRYING: "🔁",
    names.STAGE_WAITING: "✋",
    names.STAGE_COMPLETED: "✅",
    names.STAGE_FAILED: "❌",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def next_action(state: State, markdown: bool = False) -> str:
    """What a person should do next, as a command (`markdown`: untrusted parts as code)."""
    pid, status = state["project_id"], state["status"]
    if status == names.WAITING:
        return f"approve or reject the {state['current_stage']} gate: `somas approve {pid}`"
    if status == names.FAILED:
        return (
            f"`somas dead-letters {pid} list` to see why, fix the cause, then "
            f"`somas restart {pid} --stage {state['current_stage']}`"
        )
    if status == names.COMPLETED:
        return "nothing: the project is completed"
    if status == names.PAUSED:
        return f"`somas unpause {pid}` to continue"
    if status == names.CANCELLED:
        return f"nothing: cancelled (`somas reset {pid}` starts over from the issue)"
    if status == names.PARKED:
        parked = state["recovery_info"].get("parked")
        when = (parked and parked["retry_at"]) or "an operator resets the breaker"
        # The reason may quote a provider's error message: data, not Markdown.
        reason = str(parked["reason"] if parked else None)
        reason = untrusted.code_span(reason) if markdown else reason
        return f"nothing yet: parked ({reason}); `somas resume {pid}` after {when}"
    return f"`somas advance {pid}` continues the pipeline"


def status_table(state: State) -> str:
    """A plain-text table of every stage: status, attempts, duration."""
    rows = [("stage", "status", "attempts", "duration")]
    for stage in state["pipeline"]:
        record = state["stages"][stage]
        marker = (
            "→ " if stage == state["current_stage"] and state["status"] != names.COMPLETED else "  "
        )
        rows.append(
            (
                marker + stage,
                record["status"],
                str(record["attempts"]),
                _duration(record["duration_seconds"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    title = f"{state['project_id']} (issue #{state['issue_number']}: {state['title']})"
    head = (
        f"{title if len(title) <= 80 else title[:77] + '...'}\n"
        f"status: {state['status']}   current stage: {state['current_stage']}   "
        f"dead letters: {state['dead_letter_count']}\n"
        f"last checkpoint: {state['recovery_info']['last_successful_checkpoint'] or '-'}"
    )
    return head + "\n" + "\n".join(lines) + f"\nnext: {next_action(state)}"


def _mermaid(state: State) -> str:
    lines = ["```mermaid", "flowchart LR"]
    pipeline = state["pipeline"]
    for index, stage in enumerate(pipeline):
        status = state["stages"][stage]["status"]
        lines.append(f'  {stage}["{_ICONS.get(status, "")} {stage}"]:::{status}')
        if index:
            lines.append(f"  {pipeline[index - 1]} --> {stage}")
    lines += [
        "  classDef completed fill:#d4f8d4,stroke:#2da44e",
        "  classDef in_progress fill:#fff5b1,stroke:#bf8700",
        "  classDef retrying fill:#fff5b1,stroke:#bf8700",
        "  classDef waiting fill:#ddf4ff,stroke:#0969da",
        "  classDef failed fill:#ffebe9,stroke:#cf222e",
        "  classDef pending fill:#f6f8fa,stroke:#8c959f",
        "```",
    ]
    return "\n".join(lines)


def _why(state: State) -> list[str]:
    """Why a failed or parked project stopped, in the words of its last error (as data)."""
    info = state["recovery_info"]
    failure, parked = info["last_failure"], info.get("parked")
    if state["status"] == names.FAILED and failure:
        error = failure["error"]
        kind, message = untrusted.code_span(error["kind"], 60), error["message"]
        return [f"**Stopped:** {kind}: {untrusted.code_span(message, 500)}", ""]
    if state["status"] == names.PARKED and parked:
        return [f"**Parked:** {untrusted.code_span(parked['reason'], 500)}", ""]
    return []


def _agents(state: State) -> list[str]:
    """What the agents did through their tools, and a reviewer's open request for changes."""
    lines = []
    metrics = state["metrics"]
    turns = metrics.get("agent_turns", 0)
    if turns:
        calls = metrics.get("tool_calls", 0)
        lines.append(
            f"**Agents' tools:** {turns} turns, {calls} tool calls, each in the log "
            f"(`somas replay {state['project_id']}` re-runs them)"
        )
    request = state.get("changes_requested")
    if request is not None:
        comments = "; ".join(request["comments"]) or request["summary"]
        lines.append(
            f"**Changes requested** by {request['stage']} (round {request['round']} of "
            f"{request['max_rounds']}): {untrusted.code_span(comments, 500)}"
        )
    return [*lines, ""] if lines else []


def status_markdown(state: State) -> str:
    """The issue's status comment: a stage table, a Mermaid diagram, the next human action."""
    rows = ["| Stage | Status | Attempts | Duration |", "|---|---|---|---|"]
    for stage in state["pipeline"]:
        record = state["stages"][stage]
        icon = _ICONS.get(record["status"], "")
        duration = _duration(record["duration_seconds"])
        rows.append(f"| {stage} | {icon} {record['status']} | {record['attempts']} | {duration} |")
    return "\n".join(
        [
            f"### SOMAS pipeline: `{state['project_id']}` is **{state['status']}**",
            "",
            *rows,
            "",
            _mermaid(state),
            "",
            *_agents(state),
            *_why(state),
            f"**Next:** {next_action(state, markdown=True)}",
        ]
    )
