"""What running the tests on one tree gave: the record the verdict, the artifact and the base
cache share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from somas_action.core.regression import RunSummary
from somas_action.core.test_outcomes import CaseResult, Counts, ResultSource

TimedOut = Literal["overall", "per_test"]


@dataclass(frozen=True)
class TreeRun:
    """What running the plan on one commit gave."""

    commit: str
    completed: bool
    problem: str
    exit_code: int | None
    timed_out: TimedOut | None
    result_source: ResultSource
    cases: tuple[CaseResult, ...] | None
    counts: Counts | None
    duration_seconds: float
    output_tail: str

    def summary(self) -> RunSummary:
        """The part the verdict needs."""
        return RunSummary(self.completed, self.exit_code, self.cases, self.counts, self.problem)

    def as_json(self) -> dict[str, Any]:
        """For the base-run cache."""
        return {
            "commit": self.commit,
            "completed": self.completed,
            "problem": self.problem,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "result_source": self.result_source,
            "cases": None if self.cases is None else [_case_json(c) for c in self.cases],
            "counts": None if self.counts is None else self.counts.__dict__,
            "duration_seconds": self.duration_seconds,
            "output_tail": self.output_tail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TreeRun:
        """Back from `as_json`."""
        cases = data["cases"]
        counts = data["counts"]
        return cls(
            commit=data["commit"],
            completed=data["completed"],
            problem=data["problem"],
            exit_code=data["exit_code"],
            timed_out=data["timed_out"],
            result_source=data["result_source"],
            cases=None if cases is None else tuple(CaseResult(**c) for c in cases),
            counts=None if counts is None else Counts(**counts),
            duration_seconds=data["duration_seconds"],
            output_tail=data["output_tail"],
        )


def _case_json(case: CaseResult) -> dict[str, Any]:
    return {
        "test": case.test,
        "outcome": case.outcome,
        "file": case.file,
        "message": case.message,
        "detail": case.detail,
    }
