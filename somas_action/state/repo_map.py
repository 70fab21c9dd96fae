"""A repository map for agents without tools: the files, their symbols, what the issue names.

Within a character budget, in this order: the allowed paths, the files the issue text names
(whole when small, else their outline), every tracked path grouped by folder, then symbol
outlines (Python via `ast`; other languages via tree-sitter when installed) until the budget
is used, saying what was left out.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from somas_action.core.errors import WorkspaceError
from somas_action.state.git import GitWorkspace
from somas_action.state.outline import outline

_HIDDEN = (".somas/",)
_MAX_BLOB_BYTES = 1_000_000  # larger files are listed, never read
_PATH_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*\.[A-Za-z0-9]{1,10}")
_MAX_NAMED = 5
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")


@dataclass(frozen=True)
class RepoMap:
    """The map's text and what went into it."""

    text: str
    files: int
    named: tuple[str, ...]
    outlined: int
    omitted: int


def repository_map(
    workspace: GitWorkspace,
    ref: str,
    budget_chars: int,
    issue_text: str = "",
    allowed_paths: Sequence[str] = (),
) -> RepoMap:
    """The map of `ref`'s tree within `budget_chars` characters."""
    sizes = _tracked(workspace, ref)
    paths = sorted(sizes)
    named = named_paths(issue_text, paths)
    texts = _texts(workspace, ref, [p for p in paths if sizes[p] <= _MAX_BLOB_BYTES])
    header = f"Repository map of {ref} ({len(paths)} files)\n"
    if allowed_paths:
        header += f"Changes are allowed only under: {', '.join(allowed_paths)}\n"
    named_text = _named_section(named, texts, budget_chars, issue_identifiers(issue_text))
    parts = [header, named_text, _tree_section(paths)]
    used = sum(len(p) for p in parts)
    outlines, outlined, omitted = _outline_section(paths, named, texts, budget_chars - used)
    text = "".join(parts) + outlines
    return RepoMap(text[:budget_chars], len(paths), tuple(named), outlined, omitted)


def named_paths(issue_text: str, paths: Sequence[str]) -> list[str]:
    """Tracked files the issue mentions, by full path or by a unique file name."""
    by_name: dict[str, list[str]] = {}
    for path in paths:
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    known = set(paths)
    found: list[str] = []
    for token in _PATH_TOKEN.findall(issue_text):
        token = token.strip("./")
        candidates = [token] if token in known else by_name.get(token, [])
        if len(candidates) == 1 and candidates[0] not in found:
            found.append(candidates[0])
    return found[:_MAX_NAMED]


# -- sections ----------------------------------------------------------------------------------


def issue_identifiers(issue_text: str) -> set[str]:
    """Code-like words of the issue (`apply_discount`, `parseConfig`): symbols it names."""
    return {
        word
        for word in _IDENTIFIER.findall(issue_text)
        if "_" in word.strip("_") or any(c.isupper() for c in word[1:])
    }


def _relevant_first(symbols: list[str], identifiers: set[str]) -> list[str]:
    """The symbols the issue names first (so a cut outline still shows them), then the rest."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(identifiers))) + r")\b")
    hits = [s for s in symbols if identifiers and pattern.search(s)]
    if not hits:
        return symbols
    return [*hits, "(the symbols the issue names, above; all of them below)", *symbols]


def _named_section(
    named: list[str], texts: dict[str, str], budget: int, identifiers: set[str]
) -> str:
    if not named:
        return ""
    share = budget // (2 * len(named))  # half the budget at most for what the issue names
    out = ["\n## Files the issue names\n"]
    for path in named:
        text = texts.get(path)
        if text is None:
            out.append(f"\n### {path} (binary or too large to show)\n")
        elif len(text) <= share:
            out.append(f"\n### {path}\n{text}{'' if text.endswith(chr(10)) else chr(10)}")
        else:
            lines = len(text.splitlines())
            symbols = _fit(_relevant_first(outline(path, text) or [], identifiers), share)
            out.append(f"\n### {path} ({lines} lines; its outline, too large to show whole)\n")
            out.append("".join(f"{s}\n" for s in symbols))
    return "".join(out)


def _tree_section(paths: Sequence[str]) -> str:
    folders: dict[str, list[str]] = {}
    for path in paths:
        pure = PurePosixPath(path)
        folder = str(pure.parent) + "/" if str(pure.parent) != "." else "(top)"
        folders.setdefault(folder, []).append(pure.name)
    lines = [f"{folder}: {', '.join(names)}" for folder, names in folders.items()]
    return "\n## Files\n" + "\n".join(lines) + "\n"


def _outline_section(
    paths: Sequence[str], named: list[str], texts: dict[str, str], budget: int
) -> tuple[str, int, int]:
    """(text, files outlined, files left out) for the outlines that fit in `budget`."""
    order = sorted(
        (p for p in paths if p in texts and p not in named),
        key=lambda p: ("test" in p.lower(), p.count("/"), p),
    )
    out, used, outlined = ["\n## Symbols\n"], 0, 0
    candidates = [(p, outline(p, texts[p])) for p in order]
    with_symbols = [(p, s) for p, s in candidates if s]
    for index, (path, symbols) in enumerate(with_symbols):
        block = f"{path}\n" + "".join(f"  {s}\n" for s in _fit(symbols, max(budget // 4, 200)))
        if used + len(block) > budget - 100:
            left = len(with_symbols) - index
            out.append(f"[symbols of {left} more files left out: the map's budget]\n")
            return "".join(out), outlined, left
        out.append(block)
        used += len(block)
        outlined += 1
    return ("".join(out) if outlined else ""), outlined, 0


def _fit(lines: list[str], budget: int) -> list[str]:
    """As many of `lines` as fit in `budget` characters, and how many more there were."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        if used + len(line) + 1 > budget:
            return [*kept, f"… {len(lines) - index} more symbols"]
        kept.append(line)
        used += len(line) + 1
    return kept


# -- git ---------------------------------------------------------------------------------------


def _tracked(workspace: GitWorkspace, ref: str) -> dict[str, int]:
    """Every regular file of `ref`'s tree and its size in bytes."""
    out = _git_bytes(workspace, "ls-tree", "-r", "-l", "-z", "--full-tree", ref)
    sizes = {}
    for entry in out.decode(errors="replace").split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, _, size = meta.split()
        if kind == "blob" and mode in ("100644", "100755") and not path.startswith(_HIDDEN):
            sizes[path] = int(size)
    return sizes


def _texts(workspace: GitWorkspace, ref: str, paths: Sequence[str]) -> dict[str, str]:
    """The UTF-8 text of `paths` at `ref` through one `git cat-file --batch` (no binaries)."""
    if not paths:
        return {}
    request = "".join(f"{ref}:{p}\n" for p in paths).encode()
    out = _git_bytes(workspace, "cat-file", "--batch", stdin=request)
    texts, at = {}, 0
    for path in paths:
        newline = out.index(b"\n", at)
        size = int(out[at:newline].split()[2])
        data = out[newline + 1 : newline + 1 + size]
        at = newline + 1 + size + 1
        if b"\0" not in data[:8000]:
            try:
                texts[path] = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
    return texts


def _git_bytes(workspace: GitWorkspace, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        ["git", "-C", str(workspace.repo), *args], input=stdin, capture_output=True, check=False
    )
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise WorkspaceError(f"git {args[0]} failed: {reason[-1] if reason else 'no output'}")
    return result.stdout
