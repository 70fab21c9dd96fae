"""`from somas.core.circuit_breaker import CircuitBreaker`, as the operations runbook writes it.

`CircuitBreaker(service_name="ai_api")` finds the repository (the current folder or
`$SOMAS_REPO`), reads its config, and `.reset()` / `.trip()` change the breaker that every
run shares (`.somas/breakers.json`), then record the change in each active project's log.
"""

from __future__ import annotations

from somas_action.core.breaker import Transition
from somas_action.pipeline.breaker_mirror import mirror_into_projects
from somas_action.state import breakers


class CircuitBreaker(breakers.CircuitBreaker):
    """The shared breaker of one service; operator changes are mirrored into every project."""

    last_mirrored: list[str]

    def reset(self) -> Transition:
        """Force the breaker closed (the service is verified healthy); mirrored into projects."""
        return self._mirror(super().reset())

    def trip(self) -> Transition:
        """Force the breaker open until `reset()`; mirrored into projects."""
        return self._mirror(super().trip())

    def _mirror(self, transition: Transition) -> Transition:
        self.last_mirrored = mirror_into_projects(
            self.repo, transition, self.clock, self.policy.actor
        )
        return transition


__all__ = ["CircuitBreaker"]
