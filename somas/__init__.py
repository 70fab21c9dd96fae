"""The runbook's import path: `somas.core.circuit_breaker`. The real package is `somas_action`."""
