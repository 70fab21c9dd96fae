"""Python's `unittest` (`python -m unittest -v`) as a test runner that needs nothing installed.

Verbose runs print one line per test, `test_name (package.module.Class.test_name) ... ok` (Python
3.11+; `(package.module.Class)` before), then a block per failure or error with its traceback,
then `Ran N tests` and `OK` or `FAILED (failures=1, errors=2, skipped=1)`. A test's id is its
dotted path (`tests.test_slug.SlugTest.test_empty`) and its file the module's path
(`tests/test_slug.py`).
"""

from __future__ import annotations

import re

from somas_action.core.test_outcomes import (
    DETAIL_CHARS,
    CaseResult,
    Counts,
    Outcome,
    clip,
    first_line,
)

_LINE = re.compile(
    r"^(?P<name>\w+) \((?P<where>[\w.]+)\)(?:\n.*?)?(?: \.\.\. |\s*\.\.\. )"
    r"(?P<word>ok|FAIL|ERROR|skipped|expected failure|unexpected success)\b",
    re.MULTILINE,
)
_BLOCK = re.compile(r"^(?P<word>FAIL|ERROR): (?P<name>\w+) \((?P<where>[\w.]+)\)", re.MULTILINE)
_RULE = re.compile(r"^(?:=|-){20,}$", re.MULTILINE)
_RAN = re.compile(r"^Ran (?P<n>\d+) tests? in [\d.]+s$", re.MULTILINE)
_RESULT = re.compile(r"^(?:OK|FAILED)(?: \((?P<details>[^)]*)\))?$", re.MULTILINE)
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b")
_WORDS: dict[str, Outcome] = {
    "ok": "passed",
    "unexpected success": "passed",
    "FAIL": "failed",
    "ERROR": "error",
    "skipped": "skipped",
    "expected failure": "skipped",
}


def unittest_cases(output: str) -> list[CaseResult]:
    """Every test a verbose unittest run named, with each failure's traceback."""
    cases: dict[str, CaseResult] = {}
    for match in _LINE.finditer(output):
        test = test_id(match["name"], match["where"])
        cases[test] = CaseResult(test, _WORDS[match["word"]], module_file(test))
    for test, outcome, detail in _failure_blocks(output):
        message = _last_line(detail)
        cases[test] = CaseResult(
            test, outcome, module_file(test), message, clip(detail, DETAIL_CHARS)
        )
    return list(cases.values())


def unittest_summary(output: str) -> Counts | None:
    """Counts from `Ran N tests` and the `OK`/`FAILED (…)` line after it."""
    ran = list(_RAN.finditer(output))
    if not ran:
        return None
    result = _RESULT.search(output, ran[-1].end())
    if result is None:
        return None
    details = dict(re.findall(r"(\w[\w ]*?)=(\d+)", result["details"] or ""))
    failed = int(details.get("failures", 0))
    errors = int(details.get("errors", 0))
    skipped = int(details.get("skipped", 0)) + int(details.get("expected failures", 0))
    total = int(ran[-1]["n"])
    return Counts(max(total - failed - errors - skipped, 0), failed, errors, skipped)


def test_id(name: str, where: str) -> str:
    """`package.module.Class.test_name` from a result line's parts (either Python's format)."""
    return where if where.endswith(f".{name}") else f"{where}.{name}"


def module_file(test: str) -> str | None:
    """`package/module.py` for a dotted test id (the parts before the first class name)."""
    parts = test.split(".")
    for index, part in enumerate(parts):
        if part[:1].isupper():
            return "/".join(parts[:index]) + ".py" if index else None
    return None


def _failure_blocks(output: str) -> list[tuple[str, Outcome, str]]:
    found = []
    for match in _BLOCK.finditer(output):
        body = output[match.end() :]
        body = body[body.find("\n") + 1 :]
        rule = _RULE.search(body)
        if rule is not None and rule.start() == 0:  # the `----` under the header
            body = body[rule.end() + 1 :]
        end = re.search(r"^(?:={20,}|-{20,})$|^Ran \d+ tests? in ", body, re.MULTILINE)
        detail = body[: end.start()] if end else body
        outcome: Outcome = "failed" if match["word"] == "FAIL" else "error"
        found.append((test_id(match["name"], match["where"]), outcome, detail.strip()))
    return found


def _last_line(detail: str) -> str:
    """The exception line of a traceback (`AssertionError: 'a' != 'b'`), else its last line."""
    lines = [line for line in detail.splitlines() if line.strip()]
    raised = [line for line in lines if _EXCEPTION.match(line)]
    chosen = raised[-1] if raised else (lines[-1] if lines else "")
    return first_line(chosen)
