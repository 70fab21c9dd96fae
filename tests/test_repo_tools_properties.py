"""Property tests: exact replace, and every tool's path confinement, on generated input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from somas_action.config.tool_specs import EDIT_TOOLS, tool_specs
from somas_action.core.conversation import ToolCall
from somas_action.core.text_edits import ToolError, occurrences, replace_once
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools
from somas_action.state.scratch import ScratchTree
from tests import tool_fixtures as lib

# Git subprocesses per example: no per-example deadline; few examples, still every shape.
SLOW = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ALLOWED = ("src/", "tests/")
SECRET = "TOPSECRET-42\n"  # the file outside the worktree that no tool may read or change
# Small alphabets make matches, repeats and overlaps frequent.
TEXT = st.text(alphabet="ab \n", max_size=30)
OLD = st.text(alphabet="ab \n", min_size=1, max_size=4)
SEGMENTS = st.sampled_from(
    ["..", ".", "", "src", "tests", ".git", ".somas", ".github", "ledger", "a.py", "b\\c", "~",
     "link", "linkdir", "rules.py", "docs", "%2e%2e"]
)  # fmt: skip
# Starts that lead somewhere interesting: through the links, into SOMAS's own folders.
STARTS = st.sampled_from(
    ["src/link", "src/linkdir", "src/linkdir/secret.txt", "src/linkdir/new.py", "src/ledger",
     "tests", ".git", ".somas", "..", "src/.."]
)  # fmt: skip
PATHS = st.one_of(
    st.tuples(STARTS, st.lists(SEGMENTS, max_size=2)).map(lambda t: "/".join([t[0], *t[1]])),
    st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join),
    st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=20),
)


# -- replace_in_file on text -----------------------------------------------------------------


@given(text=TEXT, old=OLD, new=TEXT)
def test_replace_succeeds_exactly_when_old_occurs_once(text: str, old: str, new: str) -> None:
    found = occurrences(text, old)
    if len(found) == 1:
        updated, line = replace_once("f", text, old, new)
        assert updated == text.replace(old, new, 1)
        assert line == text[: found[0]].count("\n") + 1
        return
    with pytest.raises(ToolError) as refused:
        replace_once("f", text, old, new)
    message = str(refused.value)
    if not found:
        assert "`old` was not found" in message
    else:
        assert f"`old` matches {len(found)}" in message and "exactly one" in message


@given(text=TEXT, old=OLD)
def test_overlapping_occurrences_count_as_several(text: str, old: str) -> None:
    starts = [i for i in range(len(text)) if text.startswith(old, i)]
    assert occurrences(text, old, limit=len(text) + 1) == starts


# -- the tools in a real worktree ------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A worktree with a symbolic link to a file and a folder outside it."""
    base = tmp_path_factory.mktemp("props")
    library = lib.make_library(base / "ledger")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    with ScratchTree.open(GitWorkspace(library), "main") as scratch:
        os.symlink(outside / "secret.txt", scratch.root / "src" / "link")
        os.symlink(outside, scratch.root / "src" / "linkdir")
        yield {"scratch": scratch, "outside": outside, "base": scratch.tree()}


def tools_in(world: dict[str, Any], max_file_bytes: int = 200_000) -> RepositoryTools:
    specs = tool_specs(EDIT_TOOLS, edits=True)
    limits = lib.tool_settings(ALLOWED, max_file_bytes=max_file_bytes, max_files=1000)
    return RepositoryTools(world["scratch"], specs, limits, run_tests=lambda tree: {})


def outside_untouched(world: dict[str, Any]) -> bool:
    outside: Path = world["outside"]
    return sorted(p.name for p in outside.iterdir()) == ["secret.txt"] and (
        (outside / "secret.txt").read_text() == SECRET
    )


def plain_inside(path: str, prefixes: tuple[str, ...] | None) -> bool:
    """The rule a successful call's path must satisfy."""
    pure = PurePosixPath(path)
    parts = pure.parts
    if pure.is_absolute() or not parts or "\\" in path:
        return False
    if any(p in ("..", ".", "") for p in parts) or parts[0] in (".git", ".somas", ".github"):
        return False
    if parts[:2] in (("src", "link"), ("src", "linkdir")) or "\0" in path:
        return False
    return prefixes is None or any(path.startswith(p) for p in prefixes)


def reset(world: dict[str, Any]) -> None:
    world["scratch"].restore(world["base"])
    scratch: ScratchTree = world["scratch"]
    for name in ("link", "linkdir"):  # `git clean` removed the untracked links
        target = world["outside"] / "secret.txt" if name == "link" else world["outside"]
        if not (scratch.root / "src" / name).is_symlink():
            os.symlink(target, scratch.root / "src" / name)


CALLS = {
    "read_file": lambda p: {"path": p},
    "list_files": lambda p: {"prefix": p},
    "search": lambda p: {"pattern": "TOPSECRET", "prefix": p},
    "replace_in_file": lambda p: {"path": p, "old": "TOPSECRET", "new": "leaked"},
    "create_file": lambda p: {"path": p, "content": "created\n"},
    "delete_file": lambda p: {"path": p},
}
WRITES = ("replace_in_file", "create_file", "delete_file")


@pytest.mark.parametrize("tool", list(CALLS))
@SLOW
@given(path=PATHS)
def test_no_tool_reaches_outside_the_worktree(world: dict[str, Any], tool: str, path: str) -> None:
    tools = tools_in(world)
    result = tools.execute(ToolCall("p", tool, CALLS[tool](path))).result
    try:
        assert outside_untouched(world)
        assert SECRET.strip() not in result.content
        if not result.is_error and tool in ("read_file", *WRITES):
            assert plain_inside(path, ALLOWED if tool in WRITES else None), result.content
        if tool in WRITES and not plain_inside(path, ALLOWED):
            assert result.is_error and world["scratch"].tree() == world["base"]
    finally:
        reset(world)


@SLOW
@given(old=OLD, new=st.text(alphabet="ab \n", max_size=60))
def test_replace_in_a_file_keeps_its_size_bound(world: dict[str, Any], old: str, new: str) -> None:
    scratch: ScratchTree = world["scratch"]
    text = "ab a\nb ab\n"
    (scratch.root / "src" / "small.txt").write_text(text)
    scratch.stage("src/small.txt")
    tools = tools_in(world, max_file_bytes=20)
    call = ToolCall("s", "replace_in_file", {"path": "src/small.txt", "old": old, "new": new})
    try:
        result = tools.execute(call).result
        on_disk = (scratch.root / "src" / "small.txt").read_text()
        fits = len(occurrences(text, old)) == 1 and len(text.replace(old, new, 1)) <= 20
        assert result.is_error is not fits
        assert on_disk == (text.replace(old, new, 1) if fits else text)
        if len(occurrences(text, old)) == 1 and not fits:
            assert "over workspace.max_file_bytes (20)" in result.content
    finally:
        reset(world)


@SLOW
@given(pattern=st.text(min_size=1, max_size=12))
def test_any_search_pattern_is_answered(world: dict[str, Any], pattern: str) -> None:
    result = tools_in(world).execute(ToolCall("q", "search", {"pattern": pattern})).result
    assert SECRET.strip() not in result.content
    assert (
        result.content.startswith(("error: search: ", "no match for "))
        or " matches" in (result.content.splitlines()[0])
    )
