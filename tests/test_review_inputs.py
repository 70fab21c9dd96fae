"""What the reviewer, debugger and releaser are shown: the bounded diff, the debugger's files,
the repository's version; pure helpers and their git wrappers on a real repository."""

from __future__ import annotations

from pathlib import Path

from somas_action.core.review_inputs import bound_diff, files_for_debugger, split_diff
from somas_action.core.versions import FoundVersion, current_version, newest_tag
from somas_action.state.git import GitWorkspace
from somas_action.validation.repo_facts import (
    branch_diff,
    debugger_files,
    repository_version,
)
from tests.repo_fixtures import make_fixture_repo


def file_diff(path: str, lines: int) -> str:
    """A plausible one-file diff adding `lines` lines."""
    body = "".join(f"+line {i} of {path}\n" for i in range(lines))
    return (
        f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -0,0 +1,{lines} @@\n{body}"
    )


def test_a_small_diff_is_left_whole() -> None:
    diff = file_diff("a.py", 3)
    assert bound_diff(diff, 10_000) == diff


def test_a_large_diff_lists_every_file_and_cuts_only_the_big_ones() -> None:
    small, big = file_diff("small.py", 2), file_diff("big.py", 2000)

    text = bound_diff(small + big, 4000)

    assert len(text) <= 4000
    assert text.startswith(
        "2 files changed; the diff is cut to fit:\nsmall.py (+2 -0)\nbig.py (+2000 -0)\n"
    )
    assert small in text  # the small file is whole
    assert "… big.py: " in text and "more characters of this diff left out" in text
    assert [part.path for part in split_diff(small + big)] == ["small.py", "big.py"]


def test_many_files_share_the_budget_fairly() -> None:
    diff = "".join(file_diff(f"f{i}.py", 200) for i in range(5))

    text = bound_diff(diff, 6000)

    assert len(text) <= 6000
    assert all(f"diff --git a/f{i}.py" in text for i in range(5))


def test_debugger_files_come_from_tracebacks_and_the_diff_not_the_tree_order() -> None:
    tree = {"README.md", "src/pkg/a.py", "src/pkg/b.py", "src/pkg/util.py", "tests/test_a.py"}
    traceback = (
        'File "/tmp/somas-run-x/tree/tests/test_a.py", line 5, in test_one\n'
        'File "/tmp/somas-run-x/tree/src/pkg/util.py", line 9, in helper\n'
        'File "/usr/lib/python3.11/json/__init__.py", line 1, in loads\n'
    )

    files = files_for_debugger(
        [traceback], ["tests/test_a.py"], ["src/pkg/b.py", "src/pkg/util.py"], tree, limit=3
    )

    assert files == ["src/pkg/util.py", "tests/test_a.py", "src/pkg/b.py"]


def test_node_and_rust_locations_are_found_too() -> None:
    tree = {"lib/math.js", "src/lib.rs"}
    texts = [
        "at TestContext.<anonymous> (/tmp/x/tree/lib/math.js:3:28)",
        "thread 'tests::t' panicked at src/lib.rs:24:9:",
    ]
    assert set(files_for_debugger(texts, [], [], tree, limit=5)) == tree


def test_version_from_the_manifest_first_then_the_newest_tag() -> None:
    pyproject = '[project]\nname = "x"\nversion = "8.0.2"\n'
    assert current_version({"pyproject.toml": pyproject}, ["v9.9.9"]) == FoundVersion(
        "8.0.2", "pyproject.toml"
    )
    assert current_version({"package.json": '{"version": "2.1.0"}'}, []) == FoundVersion(
        "2.1.0", "package.json"
    )
    cargo = '[package]\nname = "u"\nversion = "0.4.1"\n'
    assert current_version({"Cargo.toml": cargo}, []) == FoundVersion("0.4.1", "Cargo.toml")
    dynamic = '[project]\nname = "x"\ndynamic = ["version"]\n'
    assert current_version({"pyproject.toml": dynamic}, ["v1.2.0", "v1.10.0"]) == FoundVersion(
        "1.10.0", "tag v1.10.0"
    )
    assert current_version({"pyproject.toml": "not toml ["}, []) is None


def test_a_prerelease_tag_ranks_below_its_release() -> None:
    assert newest_tag(["v2.0.0-rc1", "v2.0.0", "v1.9", "release-3"]) == FoundVersion(
        "2.0.0", "tag v2.0.0"
    )
    assert newest_tag(["v2.0.0-rc1", "v1.9"]) == FoundVersion("2.0.0-rc1", "tag v2.0.0-rc1")


def test_repository_facts_read_with_git(tmp_path: Path) -> None:
    repo = make_fixture_repo("python_pkg", tmp_path / "repo")
    repo.git("tag", "v7.0.0")
    slug = repo.edit("src/textkit/slug.py", "separator.join(words)", '"-".join(words)')
    branch = repo.branch("somas/project-1", {"src/textkit/slug.py": slug})
    workspace = GitWorkspace(repo.path)

    assert repository_version(workspace, branch) == FoundVersion("8.0.2", "pyproject.toml")
    diff = branch_diff(workspace, "main", branch, 2000)
    assert diff.startswith("diff --git a/src/textkit/slug.py b/src/textkit/slug.py")
    assert '+    return "-".join(words)' in diff
    results = {
        "regressions": [
            {
                "test": "tests/test_slug.py::test_slugify_custom_separator",
                "file": "tests/test_slug.py",
                "message": "AssertionError",
                "output": 'File "/tmp/r/tree/src/textkit/slug.py", line 11, in slugify',
            }
        ],
        "failures": [],
        "output_tail": "",
    }
    assert debugger_files(workspace, "main", branch, results, limit=5) == [
        "src/textkit/slug.py",
        "tests/test_slug.py",
    ]
