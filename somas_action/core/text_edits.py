"""Pure text operations behind the repository tools: exact replace, numbered ranges, caps.

Every refusal is a `ToolError` whose message is what the model reads: what went wrong and
what to do instead.
"""

from __future__ import annotations

import re

# Up to this many match positions are named when `old` is not unique.
_MAX_POSITIONS = 10
# `  12| ` (the prefix read_file adds) at the start of a line of `old`.
_NUMBERED = re.compile(r"^\s*\d+\| ", re.MULTILINE)


class ToolError(Exception):
    """A tool call the model got wrong; the message goes back to it as the tool's result."""


def line_of(text: str, offset: int) -> int:
    """The 1-based line number of character `offset`."""
    return text.count("\n", 0, offset) + 1


def occurrences(text: str, old: str, limit: int = _MAX_POSITIONS + 1) -> list[int]:
    """Start offsets of `old` in `text`, overlapping ones included, at most `limit`."""
    found: list[int] = []
    start = text.find(old)
    while start >= 0 and len(found) < limit:
        found.append(start)
        start = text.find(old, start + 1)
    return found


def replace_once(path: str, text: str, old: str, new: str) -> tuple[str, int]:
    """`text` with the single occurrence of `old` replaced, and the line it starts on."""
    if not old:
        raise ToolError(f"replace_in_file {path}: `old` is empty; give the exact text to replace")
    found = occurrences(text, old)
    if not found:
        raise ToolError(f"replace_in_file {path}: `old` was not found. {_miss_hint(text, old)}")
    if len(found) > 1:
        lines = ", ".join(str(line_of(text, o)) for o in found[:_MAX_POSITIONS])
        more = " or more" if len(found) > _MAX_POSITIONS else ""
        raise ToolError(
            f"replace_in_file {path}: `old` matches {len(found)}{more} places (starting on lines "
            f"{lines}); include more of the surrounding lines so it matches exactly one"
        )
    at = found[0]
    return text[:at] + new + text[at + len(old) :], line_of(text, at)


def _miss_hint(text: str, old: str) -> str:
    """Why an exact match may have failed, as far as can be told."""
    if _NUMBERED.search(old):
        return "Remove the `N| ` line-number prefixes read_file shows; they are not in the file."
    if "\r\n" in text and "\r\n" not in old and "\n" in old:
        return "The file has CRLF (\\r\\n) line endings; use them in `old` and `new`."
    first = next((line.strip() for line in old.splitlines() if line.strip()), "")
    if first:
        near = [i for i, line in enumerate(text.splitlines(), 1) if line.strip() == first]
        if near:
            where = ", ".join(map(str, near[:_MAX_POSITIONS]))
            return (
                f"Its first line appears (ignoring indentation) on line(s) {where}: read_file "
                "that range and copy the text exactly, whitespace included."
            )
    return "Use search or read_file to find the current text, then copy it exactly."


def numbered(text: str, start: int, end: int) -> tuple[str, int, int, int]:
    """Lines `start`..`end` of `text` prefixed `N| `; (rendered, first, last, total lines)."""
    lines = text.splitlines()
    total = len(lines)
    first = max(start, 1)
    last = min(end, total)
    width = len(str(max(last, 1)))
    body = "\n".join(f"{n:>{width}}| {lines[n - 1]}" for n in range(first, last + 1))
    return body, first, last, total


def bounded(text: str, limit: int) -> str:
    """`text`, or its head with a note saying how much was cut, within `limit` characters."""
    if len(text) <= limit:
        return text
    note = f"\n[output cut: {len(text)} characters, the first {{kept}} shown; narrow the request]"
    kept = max(limit - len(note) - 8, 0)
    return text[:kept] + note.format(kept=kept)
