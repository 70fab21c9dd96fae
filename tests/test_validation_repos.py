"""The regression-aware gate on real fixture repositories, one per language, in the sandbox.

For each: a change that breaks an existing test fails and names the regression; a good change
passes; a hanging test is killed with partial results; a collection (or build) error comes back
as a failure carrying its output. Every run starts processes, so all are in the slow tier.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from somas_action.config.schemas import problems
from somas_action.core.settings import ValidationSettings
from somas_action.sandbox.isolation import Sandbox
from somas_action.validation.gate import ValidationRun, validate_branch
from somas_action.validation.plans import python_setup
from tests.repo_fixtures import FixtureRepo, make_fixture_repo, parent_env, settings


def validate(
    repo: FixtureRepo,
    branch: str,
    config: ValidationSettings,
    sandbox: Sandbox,
    cache: Path,
    **env: str,
) -> ValidationRun:
    """Validate `branch` against main the way the validation stage will; the artifact must
    match schemas/test_results.schema.json."""
    run = validate_branch(
        repo.path,
        base_ref="main",
        branch_ref=branch,
        settings=config,
        parent_env=parent_env(**env),
        cache_dir=cache,
        sandbox=sandbox,
    )
    assert problems("test_results", run.artifact) == []
    return run


def regressions(run: ValidationRun) -> dict[str, str]:
    """Regressed test -> what it did on the branch."""
    return {r["test"]: r["branch"] for r in run.artifact["regressions"]}


def checks(run: ValidationRun) -> dict[str, bool]:
    """Verdict check name -> passed."""
    return {c["name"]: c["passed"] for c in run.artifact["verdict"]["checks"]}


def outcomes(run: ValidationRun) -> dict[str, str]:
    """Branch test -> outcome."""
    return {case.test: case.outcome for case in run.branch.cases or ()}


# -- language-neutral: `sh run_tests.sh` prints TAP lines and `3 passed, 1 failed` -------------


@pytest.fixture
def neutral(tmp_path: Path) -> FixtureRepo:
    """The shell fixture; on main: 3 passed, 1 failed (a known bug, not a regression)."""
    return make_fixture_repo("neutral", tmp_path / "neutral")


NEUTRAL = {"command": "sh run_tests.sh"}


@pytest.mark.subprocess
def test_neutral_breaking_an_existing_case_names_the_regression(
    neutral: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    branch = neutral.branch("broken", {"calc.sh": neutral.edit("calc.sh", "$1 + $2", "$1 * $2")})

    run = validate(neutral, branch, settings(**NEUTRAL), sandbox, base_cache)

    assert run.base is not None and run.base.counts is not None
    assert (run.base.counts.passed, run.base.counts.failed) == (3, 1)
    assert regressions(run) == {"small": "failed", "negative": "failed"}
    assert run.artifact["result_source"] == "output"
    assert run.artifact["runner"] == "command"
    assert checks(run) == {
        "command_completed": True,
        "no_regressions": False,
        "changed_tests_pass": True,
    }
    assert next(iter(run.artifact)) == "regressions"
    assert [f["test"] for f in run.artifact["failures"]][:2] == ["small", "negative"]
    assert run.artifact["failures"][0]["regression"] is True


@pytest.mark.subprocess
def test_neutral_good_change_passes_with_its_new_case(
    neutral: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    cases = (neutral.path / "tests/cases.txt").read_text() + "large|40 2|42\n"
    branch = neutral.branch("good", {"tests/cases.txt": cases})

    run = validate(neutral, branch, settings(**NEUTRAL), sandbox, base_cache)

    assert run.verdict.passed, run.artifact["verdict"]
    assert run.artifact["added_tests"] == ["large"]
    assert run.artifact["regressions"] == []
    assert run.artifact["base"]["failed"] == 1  # the known bug is still there, and allowed
    assert run.artifact["sandbox"]["kind"] == sandbox.info.kind


@pytest.mark.subprocess
def test_neutral_summary_line_alone_gives_counts_and_an_unnamed_regression(
    neutral: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    branch = neutral.branch("quiet", {"calc.sh": neutral.edit("calc.sh", "$1 + $2", "$1 - $2")})

    run = validate(
        neutral, branch, settings(command="sh run_tests.sh --quiet"), sandbox, base_cache
    )

    assert run.artifact["result_source"] == "summary"
    assert (run.artifact["passed"], run.artifact["failed"]) == (1, 3)
    assert run.artifact["base"]["result_source"] == "summary"
    [regression] = run.artifact["regressions"]
    assert regression["test"] == "(tests not named by the runner)"
    assert "passed 3 -> 1" in regression["message"]
    assert not run.verdict.passed


@pytest.mark.subprocess
def test_neutral_overall_timeout_kills_the_group_and_keeps_partial_results(
    neutral: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    text = (neutral.path / "tests/cases.txt").read_text()
    branch = neutral.branch(
        "slow", {"tests/cases.txt": text.replace("negative|", "slow|1 1|2\nnegative|")}
    )
    config = settings(**NEUTRAL, timeout_minutes=0.05, per_test_timeout_seconds=600)

    run = validate(neutral, branch, config, sandbox, base_cache)

    assert run.artifact["timed_out"] == "overall"
    assert run.artifact["completed"] is False
    assert run.artifact["exit_code"] is None
    assert outcomes(run) == {"small": "passed", "zero": "passed"}  # what ran before the hang
    assert regressions(run) == {"negative": "missing"}
    assert "overall timeout" in run.artifact["problem"]
    assert run.artifact["failures"][0]["test"] == "(test run)"
    assert checks(run)["command_completed"] is False


@pytest.mark.subprocess
def test_neutral_broken_runner_is_a_failure_with_its_output(
    neutral: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    script = neutral.edit("run_tests.sh", "passed=0\n", "passed=0\nif then\n")
    branch = neutral.branch("syntax", {"run_tests.sh": script})

    run = validate(neutral, branch, settings(**NEUTRAL), sandbox, base_cache)

    assert run.artifact["result_source"] == "exit_code"
    assert run.artifact["exit_code"] not in (0, None)
    assert regressions(run) == {"small": "missing", "zero": "missing", "negative": "missing"}
    failure = run.artifact["failures"][0]
    assert failure["test"] == "(test run)"
    assert "syntax error" in failure["output"].lower()
    assert not run.verdict.passed


def test_a_tree_with_no_known_test_command_fails_and_says_how_to_set_one(
    tmp_path: Path, sandbox: Sandbox, base_cache: Path
) -> None:
    repo = make_fixture_repo("neutral", tmp_path / "plain")
    branch = repo.branch("docs", {"NOTES.md": "notes\n"})

    run = validate(repo, branch, settings(), sandbox, base_cache)

    assert run.artifact["base"] is None
    assert run.artifact["runner"] is None
    failure = run.artifact["failures"][0]
    assert failure["test"] == "(test run)"
    assert failure["message"].startswith("no test command: ")
    assert "set validation.command" in failure["message"]
    assert not run.verdict.passed


def test_a_link_out_of_the_tree_is_refused_with_a_reason_not_a_crash(
    neutral: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    neutral.git("checkout", "-q", "-b", "leak")
    (neutral.path / "leak").symlink_to("/etc/hostname")
    neutral.git("add", "leak")
    neutral.git("commit", "-q", "-m", "a link out of the tree")
    neutral.git("checkout", "-q", "main")

    run = validate(neutral, "refs/heads/leak", settings(**NEUTRAL), sandbox, base_cache)

    assert run.artifact["completed"] is False
    assert run.artifact["problem"].startswith("the tree of ")
    assert "could not be copied" in run.artifact["problem"]
    assert run.artifact["problem"].endswith("'leak' is a link to an absolute path")
    assert not run.verdict.passed


# -- Node: `node --test` (detected), JUnit report plus TAP on stdout ---------------------------


@pytest.fixture
def node(tmp_path: Path) -> FixtureRepo:
    """The Node fixture (no test script: detection picks `node --test`)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    return make_fixture_repo("node_pkg", tmp_path / "node")


@pytest.mark.subprocess
def test_node_breaking_add_names_every_test_it_broke(
    node: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    branch = node.branch("broken", {"lib/math.js": node.edit("lib/math.js", "a + b", "a - b")})

    run = validate(node, branch, settings(), sandbox, base_cache)

    assert run.artifact["runner"] == "node --test"
    assert run.artifact["result_source"] == "junit"
    assert run.artifact["base"]["passed"] == 3
    assert regressions(run) == {
        "add sums two numbers": "failed",
        "mean > averages values": "failed",
    }
    assert "strictly equal" in run.artifact["regressions"][0]["message"]


@pytest.mark.subprocess
def test_node_good_change_passes(node: FixtureRepo, sandbox: Sandbox, base_cache: Path) -> None:
    test = node.edit(
        "test/math.test.js",
        "test('mean of",
        "test('add handles negatives', () => {\n  assert.strictEqual(add(-2, 1), -1);\n});\n\n"
        "test('mean of",
    )
    branch = node.branch("good", {"test/math.test.js": test})

    run = validate(node, branch, settings(), sandbox, base_cache)

    assert run.verdict.passed, run.artifact["verdict"]
    assert run.artifact["added_tests"] == ["add handles negatives"]
    # node's reports name no file for a passing test, so only added tests are known as changed
    assert run.artifact["changed_tests"] == []


@pytest.mark.subprocess
def test_node_hanging_test_is_stopped_by_the_per_test_timeout(
    node: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    test = node.edit(
        "test/math.test.js",
        "test('mean of",
        "test('waits forever', async () => {\n"
        "  await new Promise(() => setInterval(() => {}, 1000));\n});\n\n"
        "test('mean of",
    )
    branch = node.branch("hang", {"test/math.test.js": test})

    run = validate(node, branch, settings(per_test_timeout_seconds=1), sandbox, base_cache)

    assert outcomes(run)["add sums two numbers"] == "passed"  # partial results
    assert outcomes(run)["test/math.test.js"] == "failed"
    hang = next(f for f in run.artifact["failures"] if f["test"] == "test/math.test.js")
    assert "timed out after 1000ms" in hang["message"]
    assert regressions(run) == {
        "mean of an empty list is zero": "missing",
        "mean > averages values": "missing",
    }


@pytest.mark.subprocess
def test_node_syntax_error_in_a_test_file_reaches_the_failures(
    node: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    branch = node.branch("syntax", {"test/extra.test.js": "const = ;\n"})

    run = validate(node, branch, settings(), sandbox, base_cache)

    failure = next(f for f in run.artifact["failures"] if f["test"] == "test/extra.test.js")
    assert "SyntaxError" in failure["output"] + failure["message"]
    assert not run.verdict.passed
    assert checks(run)["changed_tests_pass"] is False


# -- Python: pytest (detected), a test dependency installed by setup, offline wheels -----------


def python_settings(**overrides: Any) -> ValidationSettings:
    """The fixture's setup: a venv with pytest and the local test dependency `padkit`."""
    install = '--quiet --no-index --find-links "$SOMAS_WHEELHOUSE" pytest padkit'
    return settings(
        setup=[python_setup(install)],
        env=["SOMAS_WHEELHOUSE"],
        **overrides,
    )


@pytest.fixture
def python(tmp_path: Path, python_wheels: Path) -> FixtureRepo:
    """The Python fixture; SOMAS_WHEELHOUSE (read-only in the sandbox) holds its wheels."""
    return make_fixture_repo("python_pkg", tmp_path / "python")


def python_validate(
    repo: FixtureRepo, branch: str, sandbox: Sandbox, cache: Path, wheels: Path, **overrides: Any
) -> ValidationRun:
    """Validate with the offline wheelhouse shown to the sandbox."""
    config = python_settings(read_only_paths=[str(wheels)], **overrides)
    return validate(repo, branch, config, sandbox, cache, SOMAS_WHEELHOUSE=str(wheels))


@pytest.mark.subprocess
def test_python_breaking_an_existing_test_is_a_named_regression(
    python: FixtureRepo, sandbox: Sandbox, base_cache: Path, python_wheels: Path
) -> None:
    slug = python.edit("src/textkit/slug.py", "separator.join(words)", '"-".join(words)')
    branch = python.branch("broken", {"src/textkit/slug.py": slug})

    run = python_validate(python, branch, sandbox, base_cache, python_wheels)

    assert run.artifact["runner"] == "pytest"
    assert run.artifact["result_source"] == "junit"
    assert run.artifact["base"]["passed"] == 7  # padkit was installed, or one would fail
    [regression] = run.artifact["regressions"]
    assert regression["test"] == "tests/test_slug.py::test_slugify_custom_separator"
    assert regression["file"] == "tests/test_slug.py"
    assert "'a-b-c' == 'a_b_c'" in regression["message"]
    assert "test_slug.py:15" in regression["output"]


@pytest.mark.subprocess
def test_python_good_change_with_a_new_test_passes(
    python: FixtureRepo, sandbox: Sandbox, base_cache: Path, python_wheels: Path
) -> None:
    words = python.edit(
        "src/textkit/words.py",
        "    return len(text.split())",
        "    return len(text.split())\n\n\n"
        "def count_lines(text):\n    return len(text.splitlines())",
    )
    tests = (python.path / "tests/test_words.py").read_text() + (
        "\n\ndef test_counts_lines():\n    from textkit.words import count_lines\n\n"
        '    assert count_lines("a\\nb") == 2\n'
    )
    branch = python.branch("good", {"src/textkit/words.py": words, "tests/test_words.py": tests})

    run = python_validate(python, branch, sandbox, base_cache, python_wheels)

    assert run.verdict.passed, run.artifact["verdict"]
    assert run.artifact["added_tests"] == ["tests/test_words.py::test_counts_lines"]
    assert "tests/test_words.py::test_counts_words" in run.artifact["changed_tests"]
    assert run.artifact["base"]["cached"] in (True, False)
    assert run.artifact["passed"] == 8


@pytest.mark.subprocess
def test_python_hanging_test_is_killed_with_partial_results(
    python: FixtureRepo, sandbox: Sandbox, base_cache: Path, python_wheels: Path
) -> None:
    tests = (python.path / "tests/test_words.py").read_text() + (
        "\n\ndef test_waits_forever():\n    import time\n\n    time.sleep(600)\n"
    )
    branch = python.branch("hang", {"tests/test_words.py": tests})

    run = python_validate(
        python, branch, sandbox, base_cache, python_wheels, per_test_timeout_seconds=1
    )

    assert run.artifact["timed_out"] == "per_test"
    assert run.artifact["result_source"] == "output"  # pytest never wrote its JUnit report
    assert outcomes(run)["tests/test_slug.py::test_slugify_drops_accents"] == "passed"
    hung = run.artifact["failures"][0]
    assert hung["test"] == "tests/test_words.py::test_waits_forever"
    assert hung["message"].startswith("killed: no output for 1s")
    assert 'tests/test_words.py", line 15 in test_waits_forever' in hung["output"]  # the frame
    assert not run.verdict.passed


@pytest.mark.subprocess
def test_python_collection_error_is_a_failure_with_its_output(
    python: FixtureRepo, sandbox: Sandbox, base_cache: Path, python_wheels: Path
) -> None:
    tests = python.edit("tests/test_words.py", "import count_words", "import count_words, gone")
    branch = python.branch("collect", {"tests/test_words.py": tests})

    run = python_validate(python, branch, sandbox, base_cache, python_wheels)

    assert run.artifact["completed"] is True
    error = next(f for f in run.artifact["failures"] if f["test"] == "tests/test_words.py")
    assert error["kind"] == "error"
    assert "cannot import name 'gone'" in error["output"]
    assert regressions(run) == {
        "tests/test_words.py::test_counts_words": "missing",
        "tests/test_words.py::test_empty_text_has_no_words": "missing",
    }
    assert outcomes(run)["tests/test_slug.py::test_slugify_drops_accents"] == "passed"


# -- Rust: cargo test (detected); tests compiled by a build step without network ---------------


@pytest.fixture
def rust(tmp_path: Path) -> FixtureRepo:
    """The Rust fixture."""
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed (https://rustup.rs); the Rust fixture needs it")
    return make_fixture_repo("rust_crate", tmp_path / "rust")


@pytest.mark.subprocess
def test_rust_breaking_a_function_names_its_tests(
    rust: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    lib = rust.edit("src/lib.rs", "celsius * 9.0 / 5.0 + 32.0", "celsius * 2.0 + 32.0")
    branch = rust.branch("broken", {"src/lib.rs": lib})

    run = validate(rust, branch, settings(), sandbox, base_cache)

    assert run.artifact["runner"] == "cargo test"
    assert run.artifact["base"]["passed"] == 3
    assert regressions(run) == {"src/lib.rs::tests::boiling_point": "failed"}
    assert "panicked at src/lib.rs" in run.artifact["regressions"][0]["message"]
    assert outcomes(run)["tests/metres.rs::one_kilometre"] == "passed"


@pytest.mark.subprocess
def test_rust_good_change_passes(rust: FixtureRepo, sandbox: Sandbox, base_cache: Path) -> None:
    extra = "\n#[test]\nfn ten_kilometres() {\n    assert_eq!(to_metres(10), 10_000);\n}\n"
    tests = (rust.path / "tests/metres.rs").read_text() + extra
    branch = rust.branch("good", {"tests/metres.rs": tests})

    run = validate(rust, branch, settings(), sandbox, base_cache)

    assert run.verdict.passed, run.artifact["verdict"]
    assert run.artifact["added_tests"] == ["tests/metres.rs::ten_kilometres"]


@pytest.mark.subprocess
def test_rust_hanging_test_is_killed_with_partial_results(
    rust: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    hang = (
        "    #[test]\n    fn spins() {\n        loop {\n"
        "            std::thread::sleep(std::time::Duration::from_millis(50));\n"
        "        }\n    }\n\n    #[test]\n    fn freezing_point"
    )
    lib = rust.edit("src/lib.rs", "    #[test]\n    fn freezing_point", hang)
    branch = rust.branch("hang", {"src/lib.rs": lib})

    run = validate(rust, branch, settings(per_test_timeout_seconds=2), sandbox, base_cache)

    assert run.artifact["timed_out"] == "per_test"
    assert outcomes(run)["src/lib.rs::tests::freezing_point"] == "passed"
    assert regressions(run) == {"tests/metres.rs::one_kilometre": "missing"}
    assert "per-test timeout" in run.artifact["problem"]


@pytest.mark.subprocess
def test_rust_compile_error_is_a_failure_with_the_compiler_output(
    rust: FixtureRepo, sandbox: Sandbox, base_cache: Path
) -> None:
    branch = rust.branch("syntax", {"tests/metres.rs": "fn broken( {\n"})

    run = validate(rust, branch, settings(), sandbox, base_cache)

    failure = run.artifact["failures"][0]
    assert failure["test"] == "(test run)"
    assert failure["message"].startswith("build step (cargo test --offline --no-run) exited")
    assert "error" in failure["output"] and "metres.rs" in failure["output"]
    assert set(regressions(run).values()) == {"missing"}
    assert len(regressions(run)) == 3
