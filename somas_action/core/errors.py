"""One shallow error hierarchy; every message names the file or field and what to do."""

from __future__ import annotations


class SomasError(Exception):
    """A known failure, shown to the user as one line and exit code 1."""

    exit_code = 1


class ConfigError(SomasError):
    """A config or agent file is missing, unreadable or invalid."""


class StateError(SomasError):
    """A project's files are missing, corrupt or disagree with each other."""


class CommandRefused(SomasError):
    """A command is valid but cannot be applied to the project as it is now."""


class ProviderError(SomasError):
    """An agent provider failed to produce a reply.

    `kind` is one of the taxonomy in `somas_action.core.error_kinds`; `retry_after` (seconds)
    is the wait the service asked for, `service` the breaker it concerns, `status` the HTTP code.
    """

    def __init__(
        self,
        message: str,
        kind: str = "permanent",
        *,
        retry_after: float | None = None,
        service: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.service = service
        self.status = status


class WorkspaceError(SomasError):
    """A git or test-run operation on the project's workspace failed."""
