"""The text of the comments the outbox says on the issue (`core.outbox` decides which).

Each comment ends with a hidden marker naming the first event it reports
(`somas:event:<id>`), and the tracker looks the marker up before posting, so a retried run or a
retried POST never posts twice. Text that came from outside (agent errors, reasons) goes through
`core.untrusted`: it can neither mention people, link anywhere, show runner paths nor smuggle a
marker.
"""

from __future__ import annotations

from somas_action.core import untrusted
from somas_action.core.domain import Notice
from somas_action.core.outbox import Outgoing


def comment_body(project_id: str, comment: Outgoing) -> str:
    """The text of one outgoing comment (several stage completions are listed in one)."""
    if len(comment.notices) > 1:
        return _stages_completed(project_id, comment.notices)
    return notice_body(project_id, comment.notices[0])


def _stages_completed(project_id: str, notices: tuple[Notice, ...]) -> str:
    lines = [f"✅ {len(notices)} stages of `{project_id}` completed:", ""]
    lines += [f"- **{n['stage']}** (attempt {n['attempt']})" for n in notices]
    following = notices[-1]["next_stage"]
    if following:
        lines += ["", f"Next: **{following}**."]
    return "\n".join(lines)


def notice_body(project_id: str, notice: Notice) -> str:
    """The comment text for one notice."""
    kind, stage, pid = notice["kind"], notice["stage"], project_id
    if kind == "stage_completed":
        following = notice["next_stage"]
        then = f"; next: **{following}**" if following else ""
        return f"✅ Stage **{stage}** of `{pid}` completed (attempt {notice['attempt']}){then}."
    if kind == "human_gate_opened":
        return (
            f"✋ Stage **{stage}** of `{pid}` waits for a human decision.\n\n"
            "Reply `/somas approve` to continue or `/somas reject <reason>` to send it back "
            "(write access to the repository required)."
        )
    if kind == "error_occurred":
        return _failure(pid, notice)
    return f"🎉 `{pid}` completed every stage of the pipeline."


def _failure(pid: str, notice: Notice) -> str:
    stage, error = notice["stage"], notice["error"]
    kind = str(error["kind"]) if error else "error"
    lines = [
        f"❌ Stage **{stage}** of `{pid}` failed after {notice['attempts']} "
        f"attempt(s): {untrusted.code_span(kind, 40)}",
        "",
        untrusted.code_block(str(error["message"]) if error else ""),
    ]
    if notice["dead_letter"]:
        lines.append(f"\nDead letter: `{notice['dead_letter']}` (in `dead_letters.json`).")
    if notice["run_url"]:
        lines.append(f"Run: {notice['run_url']}")
    lines.append(f"\nNext: fix the cause, then `/somas restart {stage}` or `/somas retry`.")
    return "\n".join(lines)
