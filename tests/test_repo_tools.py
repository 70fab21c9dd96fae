"""The repository tools on a real git worktree: results the model reads, errors included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from somas_action.config.tool_specs import EDIT_TOOLS, READ_TOOLS, tool_specs, toolset_for
from somas_action.core.conversation import ToolCall, tool_call_record
from somas_action.core.errors import WorkspaceError
from somas_action.state.git import GitWorkspace
from somas_action.state.repo_tools import RepositoryTools, ToolSettings
from somas_action.state.scratch import ScratchTree
from tests import scenarios
from tests import tool_fixtures as lib

SETTINGS = lib.tool_settings(("src/", "tests/"), max_tool_output_chars=4000)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return lib.make_library(tmp_path / "ledger")


@pytest.fixture
def scratch(library: Path) -> Iterator[ScratchTree]:
    with ScratchTree.open(GitWorkspace(library), "main") as tree:
        yield tree


def tools_for(
    scratch: ScratchTree,
    names: tuple[str, ...] = EDIT_TOOLS,
    settings: ToolSettings = SETTINGS,
    runner: Any = None,
) -> RepositoryTools:
    specs = tool_specs(names, edits="replace_in_file" in names)
    return RepositoryTools(scratch, specs, settings, run_tests=runner)


def call(tools: RepositoryTools, name: str, **arguments: Any) -> tuple[str, bool]:
    execution = tools.execute(ToolCall("c1", name, arguments))
    return execution.result.content, execution.result.is_error


def test_the_worktree_is_separate_and_removed(library: Path) -> None:
    tree = ScratchTree.open(GitWorkspace(library), "main")
    assert tree.root.is_dir() and tree.root != library
    assert str(tree.root) in lib.git(library, "worktree", "list")
    tree.close()
    assert not tree.root.exists()
    assert str(tree.root) not in lib.git(library, "worktree", "list")
    tree.close()  # twice is harmless


def test_list_files_lists_tracked_files_under_a_prefix(scratch: ScratchTree) -> None:
    tools = tools_for(scratch)
    assert call(tools, "list_files", prefix="src/") == (
        "2 files\nsrc/ledger/__init__.py\nsrc/ledger/rules.py",
        False,
    )
    assert call(tools, "list_files", prefix="nowhere/") == (
        "no tracked files under 'nowhere/'",
        False,
    )


def test_read_file_shows_numbered_bounded_lines(scratch: ScratchTree) -> None:
    tools = tools_for(scratch, settings=lib.tool_settings(("src/",), read_max_lines=3))
    text, error = call(tools, "read_file", path=lib.MODULE, start=1, end=50)
    total = lib.rules_module().count("\n")
    assert not error
    assert text == (
        f"{lib.MODULE} lines 1-3 of {total}; read on with start=4\n"
        '1| """Ledger rules."""\n2| \n3| from __future__ import annotations'
    )


def test_read_file_refuses_what_it_cannot_show(scratch: ScratchTree) -> None:
    tools = tools_for(scratch)
    assert call(tools, "read_file", path="src/missing.py") == (
        "error: src/missing.py: no such file; list_files shows what exists",
        True,
    )
    text, error = call(tools, "read_file", path=".git/config")
    assert error and "not a plain relative path" in text
    text, error = call(tools, "read_file", path=lib.MODULE, start=5, end=2)
    assert error and text == f"error: read_file {lib.MODULE}: end (2) is before start (5)"
    (scratch.root / "src" / "blob.bin").write_bytes(b"\xff\xfe\x00")
    assert call(tools, "read_file", path="src/blob.bin") == (
        "error: src/blob.bin: not a UTF-8 text file (3 bytes)",
        True,
    )


def test_search_answers_path_line_text(scratch: ScratchTree) -> None:
    tools = tools_for(scratch)
    text, error = call(tools, "search", pattern=r"def apply_discount\(", prefix="src/")
    line = (
        lib.rules_module()
        .splitlines()
        .index("def apply_discount(total: float, percent: float) -> float:")
    )
    assert not error
    assert text == (
        f"1 matches\n{lib.MODULE}:{line + 1}:def apply_discount(total: float, percent: float) "
        "-> float:"
    )


def test_search_is_bounded_and_explains_a_bad_pattern(scratch: ScratchTree) -> None:
    tools = tools_for(scratch, settings=lib.tool_settings(("src/",), search_max_matches=2))
    text, error = call(tools, "search", pattern="def rule_")
    assert not error and text.startswith(
        f"{lib.RULES} matches (first 2 shown; narrow the pattern or prefix)\n"
    )
    assert len(text.splitlines()) == 3
    text, error = call(tools, "search", pattern="(unclosed")
    assert error and "POSIX extended regex" in text


def test_output_is_cut_to_the_cap_with_a_note(scratch: ScratchTree) -> None:
    tools = tools_for(scratch, settings=lib.tool_settings(("src/",), max_tool_output_chars=500))
    text, error = call(tools, "search", pattern="def rule_")
    assert not error and len(text) <= 500
    assert text.endswith("; narrow the request]") and "[output cut:" in text


def test_replace_in_file_changes_exactly_one_place(scratch: ScratchTree) -> None:
    tools = tools_for(scratch)
    old = '    if percent < 0:\n        raise ValueError("percent must not be negative")\n'
    text, error = call(tools, "replace_in_file", path=lib.MODULE, old=old, new=old + lib.GUARD)
    assert not error and text.startswith(f"replaced 1 occurrence in {lib.MODULE} at line ")
    assert text.endswith("(+2 lines)")
    assert (scratch.root / lib.MODULE).read_text() == lib.rules_module().replace(
        old, old + lib.GUARD
    )
    [change] = tools.changes()
    assert change.path == lib.MODULE and change.content is not None and lib.GUARD in change.content


def test_replace_in_file_explains_no_match_and_several_matches(scratch: ScratchTree) -> None:
    tools = tools_for(scratch)
    text, error = call(tools, "replace_in_file", path=lib.MODULE, old="if amount < 0:", new="x")
    assert error and f"matches {lib.RULES - 10} or more places" not in text
    assert "matches 11 or more places (starting on lines 8, " in text
    assert text.endswith("include more of the surrounding lines so it matches exactly one")
    text, error = call(
        tools, "replace_in_file", path=lib.MODULE, old="if percent < 0:\nraise", new="x"
    )
    assert error and "`old` was not found" in text and "ignoring indentation" in text
    text, error = call(tools, "replace_in_file", path=lib.MODULE, old="12| if", new="x")
    assert error and "Remove the `N| ` line-number prefixes" in text
    assert tools.changes() == []


def test_create_and_delete_files_within_the_allowed_paths(scratch: ScratchTree) -> None:
    tools = tools_for(scratch)
    assert call(tools, "create_file", path=lib.NEW_TEST, content="x = 1\n") == (
        f"created {lib.NEW_TEST} (2 lines)",
        False,
    )
    text, error = call(tools, "create_file", path=lib.NEW_TEST, content="again")
    assert error and "the file exists; change it with replace_in_file" in text
    text, error = call(tools, "create_file", path="setup.py", content="")
    assert error and "outside workspace.allowed_paths (src/, tests/)" in text
    assert call(tools, "delete_file", path="tests/test_rules.py") == (
        "deleted tests/test_rules.py",
        False,
    )
    assert call(tools, "list_files", prefix="tests/")[0] == f"1 files\n{lib.NEW_TEST}"
    assert [(c.path, c.content) for c in tools.changes()] == [
        (lib.NEW_TEST, "x = 1\n"),
        ("tests/test_rules.py", None),
    ]


def test_file_size_and_count_limits(scratch: ScratchTree) -> None:
    settings = lib.tool_settings(("src/", "tests/"), max_file_bytes=10, max_files=1)
    tools = tools_for(scratch, settings=settings)
    text, error = call(tools, "create_file", path="src/a.py", content="x" * 11)
    assert error and "would be 11 bytes, over workspace.max_file_bytes (10)" in text
    assert not call(tools, "create_file", path="src/a.py", content="x")[1]
    text, error = call(tools, "create_file", path="src/b.py", content="y")
    assert error and "1 files are already changed" in text


def test_a_symbolic_link_never_leads_out(scratch: ScratchTree, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret\n")
    os.symlink(outside, scratch.root / "src" / "link.txt")
    os.symlink(tmp_path, scratch.root / "src" / "linkdir")
    tools = tools_for(scratch)
    for name, arguments in [
        ("read_file", {"path": "src/link.txt"}),
        ("replace_in_file", {"path": "src/link.txt", "old": "secret", "new": "x"}),
        ("create_file", {"path": "src/linkdir/new.txt", "content": "x"}),
        ("delete_file", {"path": "src/link.txt"}),
    ]:
        text, error = call(tools, name, **arguments)
        assert error and "goes through a symbolic link" in text, name
    assert outside.read_text() == "secret\n" and not (tmp_path / "new.txt").exists()


def test_invalid_arguments_and_unknown_tools_are_results(scratch: ScratchTree) -> None:
    tools = tools_for(scratch, names=READ_TOOLS)
    text, error = call(tools, "read_file", path=lib.MODULE, start="one")
    assert (
        error
        and text == "error: read_file: invalid arguments: start: 'one' is not of type 'integer'"
    )
    text, error = call(tools, "replace_in_file", path=lib.MODULE, old="a", new="b")
    assert error and text == (
        "error: there is no tool 'replace_in_file' here; the tools are list_files, read_file, "
        "search, finish"
    )
    problem = tools.execute(ToolCall("c2", "search", {}, "the arguments are not valid JSON"))
    assert problem.result.content == "error: search: the arguments are not valid JSON"


def test_run_tests_is_offered_only_with_a_runner(scratch: ScratchTree) -> None:
    assert "run_tests" not in [s.name for s in tools_for(scratch).specs()]
    seen: list[Path] = []

    def runner(tree: Path) -> dict[str, Any]:
        seen.append(tree)
        return {"passed": 3, "failed": 0}

    tools = tools_for(scratch, runner=runner)
    assert call(tools, "run_tests") == ('{\n "failed": 0,\n "passed": 3\n}', False)
    assert seen == [scratch.root]


def test_finish_ends_with_the_stage_fields_and_may_require_a_change(scratch: ScratchTree) -> None:
    review = {
        "properties": {"verdict": {"enum": ["approve", "request_changes"]}},
        "required": ["verdict"],
    }
    specs = tool_specs(READ_TOOLS, stage_output=review)
    tools = RepositoryTools(scratch, specs, SETTINGS)
    text, error = call(tools, "finish", summary="looks good")
    assert error and "'verdict' is a required property" in text
    done = tools.execute(ToolCall("c3", "finish", {"summary": "ok", "verdict": "approve"}))
    assert done.finished == {"summary": "ok", "verdict": "approve"} and not done.result.is_error

    edits = RepositoryTools(
        scratch, tool_specs(EDIT_TOOLS, edits=True), SETTINGS, require_change=True
    )
    text, error = call(edits, "finish", summary="done", commit_message="m")
    assert error and "no file has been changed yet" in text


def test_toolsets_by_role() -> None:
    assert toolset_for("implementation", "implementer") == "edit"
    assert toolset_for("validation", "debugger") == "edit"
    assert [toolset_for(s, "x") for s in ("intake", "specification", "architecture", "review")] == [
        "read"
    ] * 4
    assert toolset_for("release", "releaser") == "none"


def test_changes_commit_to_the_branch_deletions_included(library: Path) -> None:
    workspace = GitWorkspace(library)
    with ScratchTree.open(workspace, "main") as scratch:
        tools = tools_for(scratch)
        call(tools, "create_file", path=lib.NEW_TEST, content="x = 1\n")
        call(tools, "delete_file", path="tests/test_rules.py")
        changes = [(c.path, c.content) for c in tools.changes()]
        expected_tree = scratch.tree()
    commit = workspace.commit_files("somas/project-1", changes, "tools' work")
    assert workspace.git("rev-parse", f"{commit}^{{tree}}") == expected_tree
    assert lib.git(library, "status", "--porcelain") == ""  # the user's checkout is untouched


def test_restore_uses_the_tree_or_redoes_the_recorded_edits(library: Path, tmp_path: Path) -> None:
    workspace = GitWorkspace(library)
    with ScratchTree.open(workspace, "main") as scratch:
        tools = tools_for(scratch)
        records = []
        for number, (name, arguments) in enumerate(
            [
                ("create_file", {"path": "src/new.py", "content": "A = 1\n"}),
                ("read_file", {"path": "src/new.py"}),
                ("replace_in_file", {"path": "src/new.py", "old": "A = 1", "new": "A = 2"}),
            ]
        ):
            tool_call = ToolCall(f"c{number}", name, arguments)
            execution = tools.execute(tool_call)
            records.append(tool_call_record(1, execution.result, tool_call, execution.tree))
        final = records[-1].tree
    # Same repository: the tree object is there.
    with ScratchTree.open(workspace, "main") as again:
        tools = tools_for(again)
        tools.restore(final, records)
        assert (again.root / "src/new.py").read_text() == "A = 2\n" and again.tree() == final
    # A fresh clone (another machine) has none of the trees: the edits are redone and checked.
    clone = tmp_path / "clone"
    lib.git(tmp_path, "clone", "-q", "--no-local", str(library), str(clone))
    with ScratchTree.open(GitWorkspace(clone), "origin/main") as elsewhere:
        tools = tools_for(elsewhere)
        assert not elsewhere.has_tree(final)
        tools.restore(final, records)
        assert elsewhere.tree() == final
        with pytest.raises(WorkspaceError, match="redoing the recorded edits gave tree"):
            tools.restore("0" * 40, records[:1])


def test_tool_settings_come_from_the_config_sections() -> None:
    """The tools' bounds are the config's `workspace` and `tool_loop` values, nothing else."""
    config = scenarios.config_section(tool_loop={"read_max_lines": 17}, workspace={"max_files": 3})
    settings = ToolSettings.of(config)
    assert (settings.read_max_lines, settings.max_files) == (17, 3)
    assert settings.allowed_paths == config.workspace.allowed_paths


def test_a_file_in_the_way_of_a_new_files_folder_is_an_error_the_model_reads(
    scratch: ScratchTree,
) -> None:
    path = "src/ledger/rules.py/x.py"  # found by the confinement property test
    content, is_error = call(tools_for(scratch), "create_file", path=path, content="x\n")
    assert is_error
    assert content == (
        f"error: create_file {path}: a file of that name is in the way of its folder; "
        "choose another path"
    )
