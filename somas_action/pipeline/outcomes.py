"""What one stage attempt came to; the runner records each kind with its own events."""

from __future__ import annotations

from dataclasses import dataclass

from somas_action.core.domain import ArtifactRecord, ErrorRecord, GateResult, JsonObject
from somas_action.core.ports import Deferral


@dataclass(frozen=True)
class Success:
    """The attempt's reply was valid and every quality gate passed."""

    output: JsonObject
    artifacts: list[ArtifactRecord]
    gate_results: list[GateResult]


@dataclass(frozen=True)
class Failure:
    """The attempt failed; what it wrote (failing test results) is kept for diagnosis."""

    error: ErrorRecord
    artifacts: list[ArtifactRecord]
    gate_results: list[GateResult]


@dataclass(frozen=True)
class Deferred:
    """No reply could be had now (every provider refused, out of time): park, lose nothing."""

    deferral: Deferral


@dataclass(frozen=True)
class ChangesRequested:
    """A valid review that requests changes: back to the stage that makes them (review_flow)."""

    output: JsonObject
    artifacts: list[ArtifactRecord]
    gate_results: list[GateResult]


Outcome = Success | Failure | Deferred | ChangesRequested
