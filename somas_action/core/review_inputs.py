"""What a reviewer or debugger is shown: a diff within a character budget, and the files that
the failing tracebacks and the change point at (not the first 50 paths of the tree)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

_FILE_HEADER = re.compile(r"^diff --git a/(?P<a>.+?) b/(?P<b>.+)$")
_TRACE_PATHS = (
    re.compile(r'File "(?P<path>[^"]+)", line \d+'),  # Python
    re.compile(r"\((?P<path>/[^()\s]+?):\d+:\d+\)"),  # Node: at fn (/abs/file.js:3:9)
    re.compile(r"at (?P<path>/[^()\s]+?):\d+:\d+"),  # Node: at /abs/file.js:3:9
    re.compile(r"panicked at (?P<path>[^\s:]+):\d+:\d+"),  # Rust
    re.compile(r"(?:^|\s)(?P<path>[\w./-]+\.\w+):\d+(?::\d+)?"),  # file:line anywhere
)


@dataclass(frozen=True)
class FileDiff:
    """One file's part of a unified diff."""

    path: str
    text: str


def split_diff(diff: str) -> list[FileDiff]:
    """A `git diff` split at each `diff --git` header."""
    parts: list[FileDiff] = []
    lines: list[str] = []
    path = ""
    for line in diff.splitlines(keepends=True):
        match = _FILE_HEADER.match(line.rstrip("\n"))
        if match:
            if lines:
                parts.append(FileDiff(path, "".join(lines)))
            path, lines = match["b"], []
        lines.append(line)
    if lines:
        parts.append(FileDiff(path, "".join(lines)))
    return parts


def bound_diff(diff: str, budget: int) -> str:
    """`diff` within `budget` characters: a list of every changed file first, then each file's
    diff, a small file whole and a large one cut to an equal share of what is left."""
    if len(diff) <= budget:
        return diff
    files = split_diff(diff)
    header = "".join(f"{f.path} (+{_count(f.text, '+')} -{_count(f.text, '-')})\n" for f in files)
    header = f"{len(files)} files changed; the diff is cut to fit:\n{header}\n"
    if len(header) >= budget:
        return header[: max(0, budget - 2)] + "…\n"
    shares = _shares([len(f.text) for f in files], budget - len(header))
    return header + "".join(_cut(f, share) for f, share in zip(files, shares, strict=True))


def _count(text: str, sign: str) -> int:
    return sum(
        1 for line in text.splitlines() if line.startswith(sign) and not line.startswith(sign * 3)
    )


def _shares(sizes: list[int], budget: int) -> list[int]:
    """Water-filling: files under the fair share get what they need, the rest split the rest."""
    shares = [0] * len(sizes)
    remaining = sorted(range(len(sizes)), key=lambda i: sizes[i])
    left = budget
    while remaining:
        fair = left // len(remaining)
        index = remaining[0]
        if sizes[index] <= fair:
            shares[index] = sizes[index]
            left -= sizes[index]
            remaining.pop(0)
            continue
        for index in remaining:
            shares[index] = fair
        break
    return shares


def _cut(part: FileDiff, share: int) -> str:
    if len(part.text) <= share:
        return part.text
    marker = f"… {part.path}: {len(part.text) - share} more characters of this diff left out\n"
    keep = max(0, share - len(marker))
    text = part.text[:keep]
    text = text[: text.rfind("\n") + 1] if "\n" in text else ""
    return text + marker if len(text) + len(marker) <= share else text


def traceback_paths(texts: Iterable[str], tree_files: Collection[str]) -> list[str]:
    """Repository files named in tracebacks, innermost frames first; a path seen from inside a
    sandbox (`/tmp/…/tree/pkg/mod.py`) is matched to the tree by its longest known suffix."""
    seen: dict[str, int] = {}
    order = 0
    for text in texts:
        for line in reversed(text.splitlines()):
            for pattern in _TRACE_PATHS:
                for match in pattern.finditer(line):
                    path = _in_tree(match["path"], tree_files)
                    if path is not None and path not in seen:
                        seen[path] = order
                        order += 1
    return sorted(seen, key=seen.__getitem__)


def _in_tree(path: str, tree_files: Collection[str]) -> str | None:
    path = path.strip().removeprefix("./")
    if path in tree_files:
        return path
    parts = path.split("/")
    for start in range(1, len(parts)):
        candidate = "/".join(parts[start:])
        if candidate in tree_files:
            return candidate
    return None


def files_for_debugger(
    failure_texts: Iterable[str],
    failing_test_files: Iterable[str | None],
    diff_files: Sequence[str],
    tree_files: Collection[str],
    limit: int,
) -> list[str]:
    """At most `limit` files for a debugger: those both in a traceback and in the diff, then the
    other traceback files, the failing tests' own files, then the rest of the diff."""
    traced = traceback_paths(failure_texts, tree_files)
    changed = [path for path in diff_files if path in tree_files]
    tests = [path for path in failing_test_files if path is not None and path in tree_files]
    ranked = [
        *[path for path in traced if path in changed],
        *traced,
        *tests,
        *changed,
    ]
    return list(dict.fromkeys(ranked))[:limit]
