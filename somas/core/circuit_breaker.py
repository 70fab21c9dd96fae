"""`from somas.core.circuit_breaker import CircuitBreaker`, as the operations runbook writes it.

`CircuitBreaker(service_name="ai_api")` finds the repository (the current folder or
`$SOMAS_REPO`), reads its config, and `.reset()` / `.trip()` change the breaker that every
run shares (`.somas/breakers.json`), recording the change in each active project's log.
"""

from __future__ import annotations

from somas_action.state.breakers import CircuitBreaker

__all__ = ["CircuitBreaker"]
