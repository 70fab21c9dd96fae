"""The repository tools over a scratch worktree: list, read, search, edit, test, finish.

A tool's result is data the model reads, errors included: a bad path, a non-unique
`old` text or invalid arguments come back as an error result with a hint, never as an
exception. Reads take any plain path of the repository (not `.git/`, `.somas/`, `.github/`);
writes only paths under `workspace.allowed_paths`; no path may leave the worktree through a
symbolic link. Every result is cut to `max_tool_output_chars`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from somas_action.config.schemas import problems_in
from somas_action.core.conversation import ToolCall, ToolCallRecord, ToolResult, ToolSpec
from somas_action.core.errors import SomasError, WorkspaceError
from somas_action.core.paths import confined_path, plain_path
from somas_action.core.settings import Config
from somas_action.core.text_edits import ToolError, bounded, numbered, replace_once
from somas_action.core.toolloop import ChangedFile, ToolExecution
from somas_action.state.scratch import ScratchTree

# Runs the repository's tests on a folder (the sandboxed runner); a JSON-able report back.
TestRunner = Callable[[Path], dict[str, Any]]
_EDITS = ("replace_in_file", "create_file", "delete_file")
_HIDDEN = (".git/", ".somas/", ".github/")
_MAX_LINE_CHARS = 300


@dataclass(frozen=True)
class ToolSettings:
    """Bounds of the tools (from `workspace` and `tool_loop` in config.yml)."""

    allowed_paths: tuple[str, ...]
    max_tool_output_chars: int
    max_file_bytes: int
    max_files: int
    read_max_lines: int
    search_max_matches: int

    @classmethod
    def of(cls, config: Config) -> ToolSettings:
        """The bounds a repository's config sets (`workspace` and `tool_loop`)."""
        workspace, loop = config.workspace, config.tool_loop
        return cls(
            allowed_paths=workspace.allowed_paths,
            max_tool_output_chars=loop.max_tool_output_chars,
            max_file_bytes=workspace.max_file_bytes,
            max_files=workspace.max_files,
            read_max_lines=loop.read_max_lines,
            search_max_matches=loop.search_max_matches,
        )


class RepositoryTools:
    """The tools `specs` offers, executed in `scratch` (implements the loop's ToolPort)."""

    def __init__(
        self,
        scratch: ScratchTree,
        specs: Sequence[ToolSpec],
        settings: ToolSettings,
        run_tests: TestRunner | None = None,
        require_change: bool = False,
    ) -> None:
        self.scratch = scratch
        self.settings = settings
        self.run_tests_with = run_tests
        self.require_change = require_change
        offered = [s for s in specs if s.name != "run_tests" or run_tests is not None]
        self._specs = {s.name: s for s in offered}
        self.base_tree = scratch.base_tree()
        self._handlers: dict[str, Callable[[dict[str, Any]], str]] = {
            "list_files": self._list_files,
            "read_file": self._read_file,
            "search": self._search,
            "replace_in_file": self._replace_in_file,
            "create_file": self._create_file,
            "delete_file": self._delete_file,
            "run_tests": self._run_tests,
        }

    # -- the ToolPort ---------------------------------------------------------------------------

    def specs(self) -> list[ToolSpec]:
        """The tools offered to the model."""
        return list(self._specs.values())

    def execute(self, call: ToolCall) -> ToolExecution:
        """Run one call; the model's mistakes become error results."""
        finished: dict[str, Any] | None = None
        try:
            self._check_call(call)
            if call.name == "finish":
                content, finished = self._finish(call.arguments), call.arguments
            else:
                content = self._handlers[call.name](call.arguments)
            is_error = False
        except ToolError as exc:
            content, is_error = f"error: {exc}", True
        limit = self.settings.max_tool_output_chars
        result = ToolResult(call.id, call.name, bounded(content, limit), is_error)
        return ToolExecution(result, self.scratch.tree(), finished)

    def restore(self, tree: str, done: Sequence[ToolCallRecord]) -> None:
        """Bring the files to `tree`: from the object if present, else by redoing the edits."""
        if tree == self.scratch.tree():
            return
        if self.scratch.has_tree(tree):
            self.scratch.restore(tree)
            return
        self._redo(tree, done)

    def changes(self) -> list[ChangedFile]:
        """Every file changed since the worktree's commit: new content, or None if deleted."""
        return [
            ChangedFile(path, None if deleted else self._text(path))
            for path, deleted in self.scratch.changed_paths(self.base_tree)
        ]

    # -- checks ---------------------------------------------------------------------------------

    def _check_call(self, call: ToolCall) -> None:
        if call.problem:
            raise ToolError(f"{call.name}: {call.problem}")
        spec = self._specs.get(call.name)
        if spec is None:
            raise ToolError(
                f"there is no tool {call.name!r} here; the tools are {', '.join(self._specs)}"
            )
        problems = problems_in(spec.parameters, call.arguments)
        if problems:
            raise ToolError(f"{call.name}: invalid arguments: {'; '.join(problems)}")

    def _readable(self, path: str) -> Path:
        try:
            plain = plain_path(path)
        except WorkspaceError as exc:
            raise ToolError(str(exc)) from None
        return self._inside(plain)

    def _writable(self, path: str) -> Path:
        try:
            plain = confined_path(path, self.settings.allowed_paths)
        except WorkspaceError as exc:
            raise ToolError(str(exc)) from None
        return self._inside(plain)

    def _inside(self, plain: str) -> Path:
        """The file's path in the worktree, refused if a symbolic link is on the way."""
        if "\0" in plain:
            raise ToolError(f"{plain!r} contains a NUL character; no file has such a name")
        root = self.scratch.root.resolve()
        target = root / plain
        if target.resolve() != target:
            raise ToolError(f"{plain!r} goes through a symbolic link; use the real path")
        return target

    def _text(self, path: str) -> str:
        return (self.scratch.root / path).read_bytes().decode("utf-8", errors="replace")

    def _read_text(self, path: str, target: Path) -> str:
        if not target.is_file():
            raise ToolError(f"{path}: no such file; list_files shows what exists")
        data = target.read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path}: not a UTF-8 text file ({len(data)} bytes)") from None

    # -- the read tools -------------------------------------------------------------------------

    def _list_files(self, args: dict[str, Any]) -> str:
        prefix = args.get("prefix", "")
        if prefix:
            self._readable(prefix.rstrip("/"))
        listed = self.scratch.git("ls-files", "-z").split("\0")
        paths = [p for p in listed if p and p.startswith(prefix) and not p.startswith(_HIDDEN)]
        if not paths:
            return f"no tracked files under {prefix!r}"
        return f"{len(paths)} files\n" + "\n".join(paths)

    def _read_file(self, args: dict[str, Any]) -> str:
        path = args["path"]
        text = self._read_text(path, self._readable(path))
        start = args.get("start", 1)
        end = args.get("end", start + self.settings.read_max_lines - 1)
        if end < start:
            raise ToolError(f"read_file {path}: end ({end}) is before start ({start})")
        end = min(end, start + self.settings.read_max_lines - 1)
        body, first, last, total = numbered(text, start, end)
        if first > total:
            return f"{path} has {total} lines; nothing at line {start}"
        more = f"; read on with start={last + 1}" if last < total else ""
        return f"{path} lines {first}-{last} of {total}{more}\n{body}"

    def _search(self, args: dict[str, Any]) -> str:
        prefix = args.get("prefix", "")
        if prefix:
            self._readable(prefix.rstrip("/"))
        if "\0" in args["pattern"]:
            raise ToolError("search: the pattern contains a NUL character")
        excluded = [f":(exclude){h.rstrip('/')}" for h in _HIDDEN[1:]]
        try:
            out = self.scratch.git(
                "grep", "-n", "-I", "-E", "--full-name", "-e", args["pattern"], "--", ".",
                *excluded, ok_codes=(0, 1),
            )  # fmt: skip
        except WorkspaceError as exc:
            raise ToolError(f"search: {exc}; the pattern is a POSIX extended regex") from None
        hits = [line for line in out.splitlines() if line.startswith(prefix)]
        if not hits:
            return f"no match for {args['pattern']!r}" + (f" under {prefix!r}" if prefix else "")
        cap = self.settings.search_max_matches
        shown = [h if len(h) <= _MAX_LINE_CHARS else h[:_MAX_LINE_CHARS] + "…" for h in hits[:cap]]
        more = f" (first {cap} shown; narrow the pattern or prefix)" if len(hits) > cap else ""
        return f"{len(hits)} matches{more}\n" + "\n".join(shown)

    # -- the edit tools -------------------------------------------------------------------------

    def _replace_in_file(self, args: dict[str, Any]) -> str:
        path = args["path"]
        target = self._writable(path)
        text = self._read_text(path, target)
        updated, line = replace_once(path, text, args["old"], args["new"])
        self._write(path, target, updated)
        added = updated.count("\n") - text.count("\n")
        return f"replaced 1 occurrence in {path} at line {line} ({added:+d} lines)"

    def _create_file(self, args: dict[str, Any]) -> str:
        path = args["path"]
        target = self._writable(path)
        if target.exists():
            raise ToolError(
                f"create_file {path}: the file exists; change it with replace_in_file "
                "(or delete_file it first)"
            )
        self._check_file_count(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError:  # a file where a folder of the path would be (`a.py/b.py`)
            raise ToolError(
                f"create_file {path}: a file of that name is in the way of its folder; "
                "choose another path"
            ) from None
        self._write(path, target, args["content"])
        return f"created {path} ({args['content'].count(chr(10)) + 1} lines)"

    def _delete_file(self, args: dict[str, Any]) -> str:
        path = args["path"]
        target = self._writable(path)
        if not target.is_file():
            raise ToolError(f"delete_file {path}: no such file")
        self._check_file_count(path)
        target.unlink()
        self.scratch.stage(path)
        return f"deleted {path}"

    def _write(self, path: str, target: Path, text: str) -> None:
        size = len(text.encode())
        if size > self.settings.max_file_bytes:
            raise ToolError(
                f"{path} would be {size} bytes, over workspace.max_file_bytes "
                f"({self.settings.max_file_bytes}); split it into smaller files"
            )
        # newline="" keeps the text's own line endings (no translation on any platform).
        with target.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        self.scratch.stage(path)

    def _check_file_count(self, path: str) -> None:
        changed = {p for p, _ in self.scratch.changed_paths(self.base_tree)}
        if path not in changed and len(changed) >= self.settings.max_files:
            raise ToolError(
                f"{path}: {len(changed)} files are already changed, the most one change may "
                f"touch (workspace.max_files); finish, or change fewer files"
            )

    # -- tests and the end ----------------------------------------------------------------------

    def _run_tests(self, args: dict[str, Any]) -> str:
        assert self.run_tests_with is not None  # only offered with a runner
        try:
            report = self.run_tests_with(self.scratch.root)
        except SomasError as exc:
            raise ToolError(f"run_tests: the test run failed: {exc}") from None
        return json.dumps(report, indent=1, sort_keys=True)

    def _finish(self, args: dict[str, Any]) -> str:
        changed = self.scratch.changed_paths(self.base_tree)
        if self.require_change and not changed:
            raise ToolError(
                "finish: no file has been changed yet; make the change (replace_in_file, "
                "create_file, delete_file), then finish"
            )
        return f"finished: {len(changed)} files changed"

    # -- rebuilding the files of a conversation on another machine ------------------------------

    def _redo(self, tree: str, done: Sequence[ToolCallRecord]) -> None:
        """Start from the last recorded tree this repository has, redo the edits after it."""
        start = next(
            (i + 1 for i in range(len(done) - 1, -1, -1) if self.scratch.has_tree(done[i].tree)),
            0,
        )
        self.scratch.restore(done[start - 1].tree if start else self.base_tree)
        for record in done[start:]:
            if record.name in _EDITS and not record.is_error:
                try:
                    self._handlers[record.name](record.arguments)
                except ToolError as exc:
                    raise WorkspaceError(f"redoing recorded {record.name} failed: {exc}") from None
        if self.scratch.tree() != tree:
            raise WorkspaceError(
                f"redoing the recorded edits gave tree {self.scratch.tree()[:12]}, not the "
                f"recorded {tree[:12]}; restart the stage (somas restart --stage …)"
            )
