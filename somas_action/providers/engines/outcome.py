"""How an engine run ended, read from its transcript, exit code and error output.

Each engine writes its own stream JSON; `read_transcript` turns it into one summary (status,
error text, usage, session id, last words), and `classify` names the outcome: success, timeout,
max turns, quota, rate limit or crash. A `command` engine speaks Claude Code's format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from somas_action.core.error_kinds import QUOTA, RATE_LIMITED, TIMEOUT
from somas_action.providers.engines.process import ProcessResult

SUCCESS = "success"
MAX_TURNS = "max_turns"
CRASH = "crash"
OUTCOME_KINDS = (SUCCESS, TIMEOUT, MAX_TURNS, QUOTA, RATE_LIMITED, CRASH)

# Quota before rate limit: both come as HTTP 429, and a quota error says so in its text.
_QUOTA = re.compile(
    r"insufficient_quota|exceeded your current quota|credit balance is too low|"
    r"quota exceeded|billing",
    re.IGNORECASE,
)
_RATE = re.compile(r"\b429\b|rate.?limit|too many requests|RESOURCE_EXHAUSTED", re.IGNORECASE)
_TURNS = re.compile(r"max(imum)?[ _-]?(session[ _-]?)?turns", re.IGNORECASE)
# aider reports API failures in its output and still exits 0.
_API_FAILURE = re.compile(r"litellm\.\w+Error|APIConnectionError|AuthenticationError")


@dataclass(frozen=True)
class EngineUsage:
    """Tokens, cost and turns as the engine reported them (None: it did not say)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    turns: int | None = None


@dataclass(frozen=True)
class TranscriptSummary:
    """What the transcript says: `status` success / max_turns / error, or "" if it never said."""

    status: str = ""
    error: str = ""
    usage: EngineUsage = field(default_factory=EngineUsage)
    session_id: str = ""
    last_text: str = ""
    lines: int = 0


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a transcript, one a line; other lines (progress, logs) are skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                yield value


def _claude_style(events: list[dict[str, Any]]) -> TranscriptSummary:
    session, text, result = "", "", None
    for event in events:
        session = str(event.get("session_id") or session)
        if event.get("type") == "assistant":
            blocks = (event.get("message") or {}).get("content") or []
            said = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("text")]
            text = "\n".join(said) or text
        if event.get("type") == "result":
            result = event
    if result is None:
        return TranscriptSummary(session_id=session, last_text=text, lines=len(events))
    subtype = str(result.get("subtype", ""))
    status = {"success": SUCCESS, "error_max_turns": MAX_TURNS}.get(subtype, "error")
    if status == SUCCESS and result.get("is_error"):
        status = "error"
    error = "" if status == SUCCESS else _result_error(result)
    usage = result.get("usage") or {}
    return TranscriptSummary(
        status=status,
        error=error,
        usage=EngineUsage(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cost_usd=_number(result.get("total_cost_usd")),
            turns=_int(result.get("num_turns")),
        ),
        session_id=session,
        last_text=str(result.get("result") or text),
        lines=len(events),
    )


def _result_error(result: dict[str, Any]) -> str:
    parts = [str(result.get("subtype", "")), str(result.get("result") or "")]
    if result.get("api_error_status"):
        parts.append(f"HTTP {result['api_error_status']}")
    parts += [str(e) for e in result.get("errors") or []]
    return "; ".join(p for p in parts if p)


def _codex(events: list[dict[str, Any]]) -> TranscriptSummary:
    session, text, status, errors = "", "", "", []
    tokens_in = tokens_out = turns = 0
    for event in events:
        kind = event.get("type")
        session = str(event.get("thread_id") or session)
        item = event.get("item") or {}
        if kind == "item.completed" and item.get("type") == "agent_message":
            text = str(item.get("text", ""))
        if kind == "turn.completed":
            usage = event.get("usage") or {}
            tokens_in += int(usage.get("input_tokens") or 0)
            tokens_out += int(usage.get("output_tokens") or 0)
            turns, status = turns + 1, SUCCESS
        if kind in ("turn.failed", "error"):
            message = (event.get("error") or {}).get("message") or event.get("message")
            errors.append(str(message))
            status = "error" if kind == "turn.failed" else status
    usage = EngineUsage(input_tokens=tokens_in, output_tokens=tokens_out, turns=turns or None)
    error = "; ".join(errors[-3:]) if status != SUCCESS else ""
    return TranscriptSummary(status, error, usage, session, text, len(events))


def _gemini(events: list[dict[str, Any]]) -> TranscriptSummary:
    session, text, result = "", "", None
    for event in events:
        session = str(event.get("session_id") or session)
        if event.get("type") == "message" and event.get("role") == "assistant":
            text = (
                (text + str(event.get("content", "")))
                if event.get("delta")
                else str(event.get("content", ""))
            )
        if event.get("type") == "result":
            result = event
    if result is None:
        return TranscriptSummary(session_id=session, last_text=text, lines=len(events))
    error = str((result.get("error") or {}).get("message", ""))
    status = SUCCESS if result.get("status") == "success" else "error"
    if status != SUCCESS and _TURNS.search(error):
        status = MAX_TURNS
    stats = result.get("stats") or {}
    usage = EngineUsage(
        input_tokens=int(stats.get("input_tokens") or 0),
        output_tokens=int(stats.get("output_tokens") or 0),
    )
    return TranscriptSummary(status, error, usage, session, text, len(events))


def _no_stream(events: list[dict[str, Any]]) -> TranscriptSummary:
    return TranscriptSummary(lines=len(events))


_READERS: dict[str, Callable[[list[dict[str, Any]]], TranscriptSummary]] = {
    "claude-code": _claude_style,
    "command": _claude_style,
    "codex": _codex,
    "gemini-cli": _gemini,
    "aider": _no_stream,
}


def read_transcript(engine: str, path: Path) -> TranscriptSummary:
    """Summarize the stream JSON an engine wrote to `path`."""
    return _READERS[engine](list(json_lines(path)))


def classify(summary: TranscriptSummary, process: ProcessResult, errors: str) -> tuple[str, str]:
    """The outcome kind and a one-line reason, from the transcript, exit and error output."""
    if process.timed_out:
        return TIMEOUT, "the engine ran out of time; its process group was killed"
    if summary.status == MAX_TURNS:
        return MAX_TURNS, f"the engine stopped at its turn limit ({summary.error or 'max turns'})"
    if summary.status == SUCCESS and process.exit_code == 0:
        return SUCCESS, "the engine finished"
    text = f"{summary.error}\n{errors}"
    for kind, pattern in ((QUOTA, _QUOTA), (RATE_LIMITED, _RATE)):
        found = pattern.search(text)
        if found:
            return kind, _line_around(text, found.start())
    if summary.status == "" and process.exit_code == 0 and not _API_FAILURE.search(errors):
        return SUCCESS, "the engine exited 0 (it reports no structured result)"
    reason = summary.error or _last_line(errors) or f"exit code {process.exit_code}"
    return CRASH, f"the engine failed: {reason}"


def _line_around(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start : end if end >= 0 else None].strip()[:300]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
