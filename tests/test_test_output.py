"""Reading results from runners' console output: per-test lines and summary lines."""

from __future__ import annotations

from somas_action.core.test_outcomes import CaseResult, Counts
from somas_action.core.test_output import parse_cases, parse_summary, running_test

PYTEST_V = """\
collecting ... collected 4 items / 1 error

tests/test_a.py::TestC::test_in_class PASSED                             [ 25%]
tests/test_a.py::test_ok PASSED                                          [ 50%]
tests/test_a.py::test_bad FAILED                                         [ 75%]
tests/test_a.py::test_skip SKIPPED (no reason)                           [100%]

=========================== short test summary info ============================
FAILED tests/test_a.py::test_bad - AssertionError: nope
ERROR tests/test_broken.py
============ 1 failed, 2 passed, 1 skipped, 1 error in 0.03s ============
"""

CARGO = """\
   Compiling unitkit v0.4.1 (/tmp/x/tree)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 1.62s
     Running unittests src/lib.rs (target/debug/deps/unitkit-aeec31ec8445fb82)

running 3 tests
test tests::freezing_point ... ok
test tests::boiling_point ... FAILED
test tests::later ... ignored

failures:

---- tests::boiling_point stdout ----

thread 'tests::boiling_point' panicked at src/lib.rs:24:9:
assertion `left == right` failed
  left: 232.0
 right: 212.0

failures:
    tests::boiling_point

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out

     Running tests/metres.rs (target/debug/deps/metres-204dc90ff8a9856a)

running 1 test
test one_kilometre ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out
"""

TAP = """\
TAP version 13
# Subtest: adds
ok 1 - adds
  ---
  duration_ms: 1.0
  ...
# Subtest: math
    # Subtest: mul
    not ok 1 - mul
      ---
      duration_ms: 1.7
      error: |-
        Expected values to be strictly equal:
        4 !== 5
      ...
    1..1
not ok 2 - math
  ---
  duration_ms: 2.0
  ...
ok 3 - later # SKIP not today
1..3
# tests 3
# pass 1
# fail 1
# cancelled 0
# skipped 1
"""

GO = """\
=== RUN   TestAdd
--- PASS: TestAdd (0.00s)
=== RUN   TestSub
--- FAIL: TestSub (0.00s)
=== RUN   TestSkip
--- SKIP: TestSkip (0.00s)
=== RUN   TestHang
"""


def test_pytest_verbose_lines_give_node_ids_and_the_short_summary_adds_collection_errors() -> None:
    cases = {case.test: case for case in parse_cases(PYTEST_V)}

    assert {t: c.outcome for t, c in cases.items()} == {
        "tests/test_a.py::TestC::test_in_class": "passed",
        "tests/test_a.py::test_ok": "passed",
        "tests/test_a.py::test_bad": "failed",
        "tests/test_a.py::test_skip": "skipped",
        "tests/test_broken.py": "error",
    }
    assert cases["tests/test_a.py::test_bad"].message == "AssertionError: nope"
    assert cases["tests/test_a.py::test_bad"].file == "tests/test_a.py"


def test_pytest_summary_line_counts_every_word() -> None:
    assert parse_summary(PYTEST_V) == Counts(passed=2, failed=1, errors=1, skipped=1)


def test_cargo_lines_are_named_after_their_target_with_the_panic_as_message() -> None:
    cases = {case.test: case for case in parse_cases(CARGO)}

    assert {t: c.outcome for t, c in cases.items()} == {
        "src/lib.rs::tests::freezing_point": "passed",
        "src/lib.rs::tests::boiling_point": "failed",
        "src/lib.rs::tests::later": "skipped",
        "tests/metres.rs::one_kilometre": "passed",
    }
    failed = cases["src/lib.rs::tests::boiling_point"]
    assert (
        failed.message == "thread 'tests::boiling_point' panicked at src/lib.rs:24:9: "
        "assertion `left == right` failed"
    )
    assert "left: 232.0" in failed.detail
    assert failed.file == "src/lib.rs"


def test_cargo_summaries_of_every_binary_add_up() -> None:
    assert parse_summary(CARGO) == Counts(passed=2, failed=1, skipped=1)


def test_tap_leaves_are_named_by_their_path_and_parents_are_not_tests() -> None:
    cases = parse_cases(TAP)

    assert [(c.test, c.outcome) for c in cases] == [
        ("adds", "passed"),
        ("math > mul", "failed"),
        ("later", "skipped"),
    ]
    assert cases[1].message == "Expected values to be strictly equal:"
    assert "4 !== 5" in cases[1].detail


def test_node_tap_counts() -> None:
    assert parse_summary(TAP) == Counts(passed=1, failed=1, errors=0, skipped=1)


def test_go_verbose_lines_and_the_test_still_running() -> None:
    assert [(c.test, c.outcome) for c in parse_cases(GO)] == [
        ("TestAdd", "passed"),
        ("TestSub", "failed"),
        ("TestSkip", "skipped"),
    ]
    assert running_test(GO) == "TestHang"


def test_the_plain_line_counts_in_any_language() -> None:
    assert parse_summary("building\nsuite: 3 passed, 1 failed\n") == Counts(3, 1)
    assert parse_summary("3 passed, 1 failed, 2 skipped") == Counts(3, 1, 0, 2)
    assert parse_summary("we passed, 1 failed") is None
    assert parse_cases("3 passed, 1 failed") == []


def test_the_test_a_killed_pytest_was_running_is_its_unfinished_line() -> None:
    output = "tests/test_a.py::test_ok PASSED   [ 50%]\ntests/test_a.py::test_hang "
    assert running_test(output) == "tests/test_a.py::test_hang"
    assert parse_cases(output) == [
        CaseResult("tests/test_a.py::test_ok", "passed", "tests/test_a.py")
    ]


def test_a_faulthandler_dump_names_the_test_too() -> None:
    output = (
        "tests/test_a.py::test_hang Timeout (0:00:01)!\n"
        "Thread 0x1 (most recent call first):\n"
        '  File "/x/tests/test_a.py", line 6 in test_hang\n'
    )
    assert running_test(output) == "tests/test_a.py::test_hang"


def test_output_with_no_results_has_no_cases_no_summary_no_running_test() -> None:
    assert parse_cases("make: *** No rule to make target 'test'.") == []
    assert parse_summary("") is None
    assert running_test("") is None
