"""Read test results from a runner's console output, for runs that wrote no JUnit report.

Per-test lines (pytest -v, cargo/libtest, TAP from `node --test`, `go test -v`, `python -m
unittest -v`) give named results; a summary line (`N passed, N failed`, pytest's last line,
cargo's `test result:`, node's `# pass N`, unittest's `Ran N tests` and `FAILED (…)`) gives
counts only. Ids match the JUnit ids of the same runner
(`somas_action.validation.junit`), so a timed-out run can be compared with a complete one.
"""

from __future__ import annotations

import re
from dataclasses import replace

from somas_action.core.test_outcomes import (
    DETAIL_CHARS,
    CaseResult,
    Counts,
    Outcome,
    clip,
    first_line,
)
from somas_action.core.unittest_output import unittest_cases, unittest_summary

_PYTEST_LINE = re.compile(
    r"^(?P<id>[^\s:][^\s]*::\S.*?) (?P<word>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b"
)
# Not unittest's closing `FAILED (failures=2)`: a test id never starts with a parenthesis.
_PYTEST_SHORT = re.compile(r"^(?P<word>FAILED|ERROR) (?P<id>[^\s(]\S*)(?: - (?P<msg>.*))?$")
_PYTEST_RUNNING = re.compile(r"^(?P<id>[^\s:][^\s]*::\S+) ?$")
_PYTEST_WORDS: dict[str, Outcome] = {
    "PASSED": "passed",
    "XPASS": "passed",
    "FAILED": "failed",
    "ERROR": "error",
    "SKIPPED": "skipped",
    "XFAIL": "skipped",
}
_CARGO_TARGET = re.compile(r"^\s*(?:Running (?:unittests )?(?P<src>\S+)|Doc-tests (?P<doc>\S+))")
_CARGO_LINE = re.compile(r"^test (?P<name>.+?) \.\.\. (?P<word>ok|FAILED|ignored)\b")
_CARGO_STDOUT = re.compile(r"^---- (?P<name>.+?) stdout ----$")
_CARGO_RUNNING = re.compile(r"^test (?P<name>.+?) has been running for over")
_TAP_SUBTEST = re.compile(r"^(?P<indent> *)# Subtest: (?P<name>.*)$")
_TAP_LINE = re.compile(
    r"^(?P<indent> *)(?P<ok>not ok|ok) \d+(?: -)?(?: (?P<name>.*?))?"
    r"(?: # (?P<directive>SKIP|TODO)\b.*)?$",
    re.IGNORECASE,
)
_CARGO_WORDS: dict[str, Outcome] = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}
_GO_LINE = re.compile(r"^\s*--- (?P<word>PASS|FAIL|SKIP): (?P<name>\S+)")
_GO_RUN = re.compile(r"^=== RUN\s+(?P<name>\S+)")
_GO_WORDS: dict[str, Outcome] = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}

_PLAIN_SUMMARY = re.compile(
    r"^(?:\w+:\s*)?(?P<passed>\d+) passed, (?P<failed>\d+) failed"
    r"(?:, (?P<skipped>\d+) skipped)?\s*$"
)
_PYTEST_SUMMARY = re.compile(r"^=+ (?P<body>(?:\d+ \w+(?:, )?)+) in [\d.]+s\b.*=+$")
_CARGO_SUMMARY = re.compile(
    r"^test result: \w+\. (?P<passed>\d+) passed; (?P<failed>\d+) failed; (?P<ignored>\d+) ignored"
)
_NODE_COUNT = re.compile(r"^(?:#|\u2139) (?P<key>pass|fail|skipped|todo|cancelled) (?P<n>\d+)$")


def parse_cases(output: str) -> list[CaseResult]:
    """Every named test result the output shows, in order; the last word on a test wins."""
    lines = output.splitlines()
    found: dict[str, CaseResult] = {}
    for parser in (_pytest_cases, _cargo_cases, _tap_cases, _go_cases):
        for case in parser(lines):
            found[case.test] = case
    for case in unittest_cases(output):
        found[case.test] = case
    return list(found.values())


def parse_summary(output: str) -> Counts | None:
    """Counts from the runner's summary line(s), or None when there is none."""
    lines = [line.strip() for line in output.splitlines()]
    for reader in (_pytest_summary, _cargo_summary, _node_summary, _plain_summary):
        counts = reader(lines)
        if counts is not None:
            return counts
    return unittest_summary(output)


def running_test(output: str) -> str | None:
    """The test that was running when the output stopped (a killed, hung run), if it shows."""
    lines = output.splitlines()
    if lines and (match := _PYTEST_RUNNING.match(lines[-1].rstrip("\n"))):
        return match["id"]
    for line in reversed(lines):
        if match := re.match(r"^(?P<id>[^\s:][^\s]*::\S+) Timeout \(", line):
            return match["id"]
        if match := _CARGO_RUNNING.match(line):
            return match["name"]
    return _go_unfinished(lines)


# -- per-test lines -------------------------------------------------------------------------


def _pytest_cases(lines: list[str]) -> list[CaseResult]:
    cases: dict[str, CaseResult] = {}
    for line in lines:
        if match := _PYTEST_LINE.match(line):
            test = match["id"]
            cases[test] = CaseResult(test, _PYTEST_WORDS[match["word"]], _pytest_file(test))
    for line in lines:
        if match := _PYTEST_SHORT.match(line.strip()):
            test = match["id"]
            outcome: Outcome = "failed" if match["word"] == "FAILED" else "error"
            cases[test] = CaseResult(test, outcome, _pytest_file(test), match["msg"] or "")
    return list(cases.values())


def _pytest_file(test: str) -> str | None:
    path = test.split("::", 1)[0]
    return path if path.endswith(".py") else None


def _cargo_cases(lines: list[str]) -> list[CaseResult]:
    """libtest's `test name ... ok` lines, named after the target (`src/lib.rs`, `tests/x.rs`)
    whose `Running` line came before them, with each failure's `---- name stdout ----` block."""
    cases: list[CaseResult] = []
    target = ""
    in_target: dict[str, int] = {}
    block_name: str | None = None
    block: list[str] = []

    def close_block() -> None:
        if block_name is not None and block_name in in_target:
            index = in_target[block_name]
            text = "\n".join(block)
            cases[index] = replace(
                cases[index], message=_panic(text), detail=clip(text, DETAIL_CHARS)
            )

    for line in lines:
        if match := _CARGO_TARGET.match(line):
            close_block()
            block_name, target, in_target = None, match["src"] or f"doctest {match['doc']}", {}
        elif match := _CARGO_STDOUT.match(line):
            close_block()
            block_name, block = match["name"], []
        elif block_name is not None and (
            line.strip() == "failures:" or line.startswith("test result:")
        ):
            close_block()
            block_name = None
        elif block_name is not None:
            block.append(line)
        elif match := _CARGO_LINE.match(line):
            in_target[match["name"]] = len(cases)
            source = target if target.endswith(".rs") else None
            cases.append(
                CaseResult(_cargo_id(target, match["name"]), _CARGO_WORDS[match["word"]], source)
            )
    close_block()
    return cases


def _cargo_id(target: str, name: str) -> str:
    return f"{target}::{name}" if target else name


def _panic(detail: str) -> str:
    lines = detail.splitlines()
    for index, line in enumerate(lines):
        if "panicked at" in line:
            rest = [line, *lines[index + 1 : index + 2]]
            return first_line(" ".join(part.strip() for part in rest))
    return first_line(detail)


def _tap_cases(lines: list[str]) -> list[CaseResult]:
    path: list[str] = []
    has_children: set[int] = set()
    cases: list[CaseResult] = []
    for index, line in enumerate(lines):
        if match := _TAP_SUBTEST.match(line):
            depth = len(match["indent"]) // 4
            path = [*path[:depth], match["name"].strip()]
            continue
        match = _TAP_LINE.match(line)
        if not match or match["name"] is None:
            continue
        depth = len(match["indent"]) // 4
        if depth > 0:
            has_children.add(depth - 1)
        if depth in has_children:
            has_children.discard(depth)
            continue
        name = " > ".join([*path[:depth], match["name"].strip()])
        cases.append(_tap_case(name, match, lines[index + 1 :]))
    return cases


def _tap_case(name: str, match: re.Match[str], following: list[str]) -> CaseResult:
    if match["directive"]:
        return CaseResult(name, "skipped")
    if match["ok"].lower() == "ok":
        return CaseResult(name, "passed")
    detail = _tap_yaml(following)
    message = _yaml_value(detail, "error") or first_line(detail)
    return CaseResult(name, "failed", None, message, clip(detail, DETAIL_CHARS))


def _tap_yaml(following: list[str]) -> str:
    """The YAML diagnostic block (`---` … `...`) right after a TAP result line."""
    if not following or following[0].strip() != "---":
        return ""
    block = []
    for line in following[1:]:
        if line.strip() == "...":
            break
        block.append(line)
    return "\n".join(block)


def _yaml_value(block: str, key: str) -> str:
    lines = block.splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(f"{key}:"):
            value = stripped[len(key) + 1 :].strip().strip("'\"")
            if value in ("|-", "|", ">-", ">"):
                return first_line("\n".join(lines[index + 1 : index + 4]))
            return value[:500]
    return ""


def _go_cases(lines: list[str]) -> list[CaseResult]:
    cases: list[CaseResult] = []
    for line in lines:
        if match := _GO_LINE.match(line):
            cases.append(CaseResult(match["name"], _GO_WORDS[match["word"]]))
    return cases


def _go_unfinished(lines: list[str]) -> str | None:
    finished = {m["name"] for line in lines if (m := _GO_LINE.match(line))}
    started = [m["name"] for line in lines if (m := _GO_RUN.match(line))]
    pending = [name for name in started if name not in finished]
    return pending[-1] if pending else None


# -- summary lines --------------------------------------------------------------------------


def _pytest_summary(lines: list[str]) -> Counts | None:
    for line in reversed(lines):
        if match := _PYTEST_SUMMARY.match(line):
            words = {w: int(n) for n, w in re.findall(r"(\d+) (\w+)", match["body"])}
            return Counts(
                passed=words.get("passed", 0) + words.get("xpassed", 0),
                failed=words.get("failed", 0),
                errors=words.get("errors", 0) + words.get("error", 0),
                skipped=words.get("skipped", 0) + words.get("xfailed", 0),
            )
    return None


def _cargo_summary(lines: list[str]) -> Counts | None:
    found = [m for line in lines if (m := _CARGO_SUMMARY.match(line))]
    if not found:
        return None
    return Counts(
        passed=sum(int(m["passed"]) for m in found),
        failed=sum(int(m["failed"]) for m in found),
        skipped=sum(int(m["ignored"]) for m in found),
    )


def _node_summary(lines: list[str]) -> Counts | None:
    values = {m["key"]: int(m["n"]) for line in lines if (m := _NODE_COUNT.match(line))}
    if "pass" not in values or "fail" not in values:
        return None
    return Counts(
        passed=values["pass"],
        failed=values["fail"],
        errors=values.get("cancelled", 0),
        skipped=values.get("skipped", 0) + values.get("todo", 0),
    )


def _plain_summary(lines: list[str]) -> Counts | None:
    for line in reversed(lines):
        if match := _PLAIN_SUMMARY.match(line):
            return Counts(
                passed=int(match["passed"]),
                failed=int(match["failed"]),
                skipped=int(match["skipped"] or 0),
            )
    return None
