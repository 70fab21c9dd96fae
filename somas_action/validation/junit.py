"""Read a JUnit XML report into per-test results with the same ids the console parser gives.

The report was written by repository code, so it is untrusted: its size is bounded, and the
stdlib parser is used with the bundled expat (>= 2.4.1 refuses entity-expansion bombs; no
external entities are fetched).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from somas_action.core.test_outcomes import (
    DETAIL_CHARS,
    CaseResult,
    Outcome,
    clip,
    first_line,
)
from somas_action.validation.plans import Dialect

MAX_REPORT_BYTES = 50 * 1024 * 1024
_OUTCOMES: dict[str, Outcome] = {"failure": "failed", "error": "error", "skipped": "skipped"}


class JUnitUnreadable(Exception):
    """The report exists but cannot be used; the message says why."""


def read_junit(report: Path, tree: Path, dialect: Dialect) -> list[CaseResult] | None:
    """The report's test cases; None when there is no report; JUnitUnreadable when it is bad."""
    if not report.is_file():
        return None
    size = report.stat().st_size
    if size > MAX_REPORT_BYTES:
        raise JUnitUnreadable(f"{report.name} is {size} bytes (limit {MAX_REPORT_BYTES})")
    try:
        root = ET.parse(report).getroot()
    except ET.ParseError as exc:
        raise JUnitUnreadable(f"{report.name} is not valid XML: {exc}") from None
    cases: dict[str, CaseResult] = {}
    for suites, element in _testcases(root, []):
        case = _case(element, suites, tree, dialect)
        test = case.test
        if test in cases:  # same name in two suites: tell them apart by the suite path
            test = " > ".join([*suites, test])
            case = CaseResult(test, case.outcome, case.file, case.message, case.detail)
        cases[test] = case
    return list(cases.values())


def _testcases(element: ET.Element, suites: list[str]) -> Iterator[tuple[list[str], ET.Element]]:
    for child in element:
        if child.tag == "testsuite":
            yield from _testcases(child, [*suites, child.get("name", "")])
        elif child.tag == "testcase":
            yield suites, child


def _case(element: ET.Element, suites: list[str], tree: Path, dialect: Dialect) -> CaseResult:
    name = element.get("name", "")
    classname = element.get("classname", "")
    file = _relative(element.get("file"), tree)
    outcome: Outcome = "passed"
    message = detail = ""
    for child in element:
        if child.tag in _OUTCOMES:
            outcome = _OUTCOMES[child.tag]
            text = child.text or ""
            message = first_line(child.get("message") or text)
            detail = clip(text, DETAIL_CHARS)
            break
    test = _test_id(dialect, name, classname, file, suites)
    if dialect == "pytest" and file is None:
        file = _pytest_module_file(classname, tree)
    return CaseResult(test, outcome, file, message, detail)


def _test_id(
    dialect: Dialect, name: str, classname: str, file: str | None, suites: list[str]
) -> str:
    """pytest: its node id (`tests/test_x.py::TestC::test_y`); node: `describe > test`, as in
    its TAP output; others: `classname::name`."""
    if dialect == "pytest" and file is not None:
        module = file.removesuffix(".py").replace("/", ".")
        if not classname:  # a collection error names the module
            return file
        rest = classname[len(module) + 1 :] if classname.startswith(module) else ""
        return "::".join(part for part in (file, rest.replace(".", "::"), name) if part)
    if dialect == "node":
        return " > ".join([*(s for s in suites if s), name])
    return f"{classname}::{name}" if classname else name


def _relative(path: str | None, tree: Path) -> str | None:
    if not path:
        return None
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return candidate.resolve().relative_to(tree.resolve()).as_posix()
        except ValueError:
            return None
    return candidate.as_posix()


def _pytest_module_file(classname: str, tree: Path) -> str | None:
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if (tree / candidate).is_file():
            return candidate
    return None
