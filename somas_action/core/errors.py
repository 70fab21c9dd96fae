"""One shallow error hierarchy; every message names the file or field and what to do."""

from __future__ import annotations

from somas_action.core.domain import ErrorRecord
from somas_action.core.error_kinds import PERMANENT, WORKSPACE


class SomasError(Exception):
    """A known failure, shown to the user as one line and exit code 1."""

    exit_code = 1


class ConfigError(SomasError):
    """A config or agent file is missing, unreadable or invalid."""


class StateError(SomasError):
    """A project's files are missing, corrupt or disagree with each other."""


class StateConflict(StateError):
    """Another writer changed the project since this command read it; reload and re-apply."""


class LogMoved(StateConflict):
    """The project's log on this machine moved on since the command read it (another local
    writer); reloading the project's files and deciding again resolves it. A conflict on the
    state branch is a plain StateConflict: only pulling the branch again resolves that."""


class CommandRefused(SomasError):
    """A command is valid but cannot be applied to the project as it is now."""


class ProjectBusy(CommandRefused):
    """Another run holds the project's lease and did not let go in time."""


class ClassifiedError(SomasError):
    """A failure with a kind from the taxonomy (`core.error_kinds`), recorded as JSON by `record`.

    `retry_after` (seconds) is the wait the service asked for, `services` the circuit breakers it
    concerns, `status` the HTTP code.
    """

    default_kind = PERMANENT

    def __init__(
        self,
        message: str,
        kind: str | None = None,
        *,
        retry_after: float | None = None,
        service: str | None = None,
        services: tuple[str, ...] = (),
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind or self.default_kind
        self.retry_after = retry_after
        self.services = services or ((service,) if service else ())
        self.status = status

    @property
    def service(self) -> str | None:
        """The services as one string (`openai,anthropic`), as the JSON record shows them."""
        return ",".join(self.services) or None

    def record(self) -> ErrorRecord:
        """The JSON form events, stage records and dead letters carry."""
        record: ErrorRecord = {"kind": self.kind, "message": str(self)}
        if self.services:
            record["service"] = ",".join(self.services)
        if self.status is not None:
            record["status"] = self.status
        if self.retry_after is not None:
            record["retry_after_seconds"] = round(self.retry_after, 3)
        return record


class ProviderError(ClassifiedError):
    """An agent provider failed to produce a reply."""


class AttemptFailed(ClassifiedError):
    """An attempt's output was unusable (invalid output, a failed quality gate)."""


class WorkspaceError(ClassifiedError):
    """A git or test-run operation on the project's workspace failed."""

    default_kind = WORKSPACE


class IssueGone(SomasError):
    """The issue a project reports to was deleted, or moved out of the repository.

    `how` is `deleted` or `transferred`; `where` names the issue's new home when GitHub said.
    """

    def __init__(self, number: int, how: str, detail: str, where: str | None = None) -> None:
        moved = f" to {where}" if where else ""
        super().__init__(f"issue #{number} was {how}{moved} ({detail})")
        self.number = number
        self.how = how
        self.where = where
