"""Circuit breakers, one per external service, persisted in `.somas/breakers.json`.

closed --(failure_threshold counted failures in a row)--> open --(recovery_timeout)--> half_open
half_open lets at most `half_open_requests` probe calls through at once: a probe success closes
the breaker, a probe failure re-opens it. `trip()` opens it until someone calls `reset()`.

The file is the shared truth for every run and every project in the repository (the workflow
commits it with the rest of `.somas/`); each read-modify-write holds an exclusive lock, so two
processes on one machine never lose an update. Every state change is returned as a
`Transition`, which callers record as a `circuit_breaker_*` event in the project they serve.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from somas_action.config.actor import default_actor
from somas_action.config.loader import Config, load_config
from somas_action.config.schemas import first_problem
from somas_action.core import names
from somas_action.core.clock import Clock, SystemClock, format_ts
from somas_action.core.error_kinds import CIRCUIT_OPEN
from somas_action.core.errors import ConfigError, ProviderError, StateError
from somas_action.core.projection import parse_ts
from somas_action.state.jsonio import atomic_write_json, json_problem

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
AI_API = names.AI_API
GITHUB_API = names.GITHUB_API
BUILTIN_SERVICES = (AI_API, GITHUB_API)
SERVICE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
# What is mirrored into state.json: it changes only on a transition, so mirroring is quiet.
VIEW_FIELDS = ("state", "since", "retry_at", "reason", "changed_by")


@dataclass(frozen=True)
class BreakerSettings:
    """`error_handling.circuit_breaker` of the config."""

    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    half_open_requests: int = 3

    @classmethod
    def from_config(cls, config: Config) -> BreakerSettings:
        """The settings a repository's config asks for."""
        raw = config.raw["error_handling"]["circuit_breaker"]
        return cls(
            failure_threshold=int(raw["failure_threshold"]),
            recovery_timeout=float(raw["recovery_timeout"]),
            half_open_requests=int(raw["half_open_requests"]),
        )


@dataclass(frozen=True)
class Transition:
    """One change of a breaker's state, to be recorded as an event."""

    service: str
    from_state: str
    to_state: str
    reason: str
    view: dict[str, Any]

    @property
    def event_type(self) -> str:
        """The `circuit_breaker_*` event type that records this change."""
        if self.reason.startswith("reset"):
            return "circuit_breaker_reset"
        if self.reason.startswith("tripped"):
            return "circuit_breaker_tripped"
        return {
            OPEN: "circuit_breaker_opened",
            HALF_OPEN: "circuit_breaker_half_opened",
            CLOSED: "circuit_breaker_closed",
        }[self.to_state]


def new_record() -> dict[str, Any]:
    """A breaker that has never seen a failure."""
    return {
        "state": CLOSED,
        "failures": 0,
        "since": None,
        "retry_at": None,
        "reason": None,
        "changed_by": None,
        "last_failure": None,
        "probes_in_flight": 0,
        "last_probe_at": None,
    }


def view(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a breaker record mirrored into each project's `state.json`."""
    return {key: record.get(key) for key in VIEW_FIELDS}


def breakers_path(repo: Path) -> Path:
    """`.somas/breakers.json` of a repository."""
    return repo / names.SOMAS_DIR / names.BREAKERS_FILE


class BreakerStore:
    """`.somas/breakers.json`, read and written under an exclusive lock."""

    def __init__(self, repo: Path) -> None:
        self.path = breakers_path(repo)

    def read(self) -> dict[str, dict[str, Any]]:
        """Every service's record (no lock: a snapshot for display)."""
        return self._read()["services"]  # type: ignore[no-any-return]

    @contextmanager
    def update(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Yield the services for changing in place; written back (atomically) if changed."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        # The lock is on the folder, not the file: the file is replaced by rename on every
        # write, so a lock on it would guard an inode nobody else opens any more.
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data["services"]
            if json.dumps(data, sort_keys=True) != before:
                atomic_write_json(self.path, data)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self) -> dict[str, Any]:
        fix = "fix it or delete it (every breaker then starts closed)"
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "services": {}}
        except ValueError as exc:
            raise StateError(f"{self.path}: not valid JSON ({json_problem(exc)}); {fix}") from None
        problem = first_problem("breakers", data)
        if problem:
            raise StateError(f"{self.path}: {problem}; {fix}")
        return data  # type: ignore[no-any-return]


def find_repo(start: Path | None = None) -> Path:
    """The repository: `$SOMAS_REPO`, else the nearest folder upwards holding `.somas/`."""
    explicit = os.environ.get("SOMAS_REPO")
    if explicit:
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / names.SOMAS_DIR).is_dir():
            return folder
    raise ConfigError(
        f"{here}: no .somas/ folder here or above; run this in the repository or set SOMAS_REPO"
    )


class CircuitBreaker:
    """The breaker of one service (the runbook's `somas.core.circuit_breaker.CircuitBreaker`).

    `CircuitBreaker(service_name="ai_api")` alone finds the repository (current folder or
    `$SOMAS_REPO`) and reads its config; runs inject the repository, clock and settings.
    """

    def __init__(
        self,
        service_name: str = AI_API,
        *,
        repo: Path | None = None,
        clock: Clock | None = None,
        settings: BreakerSettings | None = None,
        actor: str | None = None,
    ) -> None:
        if not SERVICE_RE.match(service_name):
            raise ConfigError(
                f"service_name {service_name!r}: expected a name like ai_api, github_api, openai"
            )
        self.service = service_name
        self.repo = repo or find_repo()
        self.clock = clock or SystemClock()
        self.settings = settings or BreakerSettings.from_config(load_config(self.repo))
        self.actor = actor
        self.store = BreakerStore(self.repo)
        self.last_mirrored: list[str] = []

    # -- reading ---------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The persisted record (a fresh closed one if the service never failed)."""
        return self.store.read().get(self.service) or new_record()

    def current_state(self) -> str:
        """closed, open or half_open, counting an open breaker past its retry time as half_open."""
        record = self.record()
        if record["state"] == OPEN and self._due(record, self.clock.now()):
            return HALF_OPEN
        return str(record["state"])

    def blocked_until(self) -> tuple[bool, datetime | None]:
        """(True, when calls may resume or None if tripped) while calls would be refused now."""
        record = self.record()
        now = self.clock.now()
        if record["state"] == OPEN and not self._due(record, now):
            return True, _ts_or_none(record["retry_at"])
        if record["state"] == HALF_OPEN and not self._probe_free(record, now):
            last = _ts_or_none(record["last_probe_at"]) or now
            return True, last + timedelta(seconds=self.settings.recovery_timeout)
        return False, None

    # -- the call protocol -----------------------------------------------------------------

    def acquire(self) -> Transition | None:
        """Let one call through, or raise ProviderError(circuit_open) without any call made."""
        now = self.clock.now()
        with self.store.update() as services:
            record = services.setdefault(self.service, new_record())
            if record["state"] == CLOSED:
                return None
            transition = None
            if record["state"] == OPEN:
                if not self._due(record, now):
                    raise self._refusal(record, now)
                transition = self._move(record, HALF_OPEN, "recovery timeout passed", now)
                record["probes_in_flight"] = 0
            if not self._probe_free(record, now):
                raise self._refusal(record, now)
            record["probes_in_flight"] = int(record.get("probes_in_flight") or 0) + 1
            record["last_probe_at"] = format_ts(now)
            return transition

    def record_success(self) -> Transition | None:
        """A call succeeded: a half-open breaker closes, a closed one forgets its failures."""
        now = self.clock.now()
        with self.store.update() as services:
            record = services.setdefault(self.service, new_record())
            if record["state"] == HALF_OPEN:
                record["failures"] = 0
                return self._move(record, CLOSED, "probe succeeded", now)
            if record["state"] == CLOSED and record["failures"]:
                record["failures"] = 0
            return None

    def record_failure(self, kind: str, message: str) -> Transition | None:
        """A counted failure (timeout, 5xx, 429, connection): may open the breaker."""
        now = self.clock.now()
        with self.store.update() as services:
            record = services.setdefault(self.service, new_record())
            record["failures"] = int(record["failures"]) + 1
            record["last_failure"] = {"kind": kind, "message": message[:300], "at": format_ts(now)}
            if record["state"] == HALF_OPEN:
                return self._open(record, now, f"probe failed ({kind})")
            if record["state"] == CLOSED and record["failures"] >= self.settings.failure_threshold:
                return self._open(
                    record, now, f"{record['failures']} failures in a row (last: {kind})"
                )
            return None

    def release(self) -> None:
        """A call ended with no verdict on the service (cancelled, 400, 401): free its probe."""
        with self.store.update() as services:
            record = services.get(self.service)
            if record and record["state"] == HALF_OPEN and record["probes_in_flight"]:
                record["probes_in_flight"] = int(record["probes_in_flight"]) - 1

    def open_until(self, until: datetime, reason: str) -> Transition | None:
        """Refuse calls until `until` (a Retry-After longer than a run can wait)."""
        now = self.clock.now()
        with self.store.update() as services:
            record = services.setdefault(self.service, new_record())
            if record["state"] == OPEN:
                current = _ts_or_none(record["retry_at"])
                if current is not None and current < until:
                    record["retry_at"] = format_ts(until)
                return None
            return self._open(record, now, reason, retry_at=until)

    # -- operator controls (the runbook's) -------------------------------------------------

    def reset(self) -> Transition:
        """Force the breaker closed (the service is verified healthy); mirrored into projects."""
        now = self.clock.now()
        with self.store.update() as services:
            record = services.setdefault(self.service, new_record())
            record.update(failures=0, probes_in_flight=0, last_probe_at=None, retry_at=None)
            transition = self._move(record, CLOSED, f"reset by {self._who()}", now)
        self._mirror(transition)
        return transition

    def trip(self) -> Transition:
        """Force the breaker open until `reset()` (no calls at all); mirrored into projects."""
        now = self.clock.now()
        with self.store.update() as services:
            record = services.setdefault(self.service, new_record())
            record.update(probes_in_flight=0, retry_at=None)
            transition = self._move(record, OPEN, f"tripped by {self._who()}", now)
        self._mirror(transition)
        return transition

    # -- internals ---------------------------------------------------------------------------

    def _who(self) -> str:
        if self.actor is None:
            self.actor = default_actor()
        return self.actor

    def _mirror(self, transition: Transition) -> None:
        from somas_action.pipeline.breaker_mirror import mirror_into_projects

        self.last_mirrored = mirror_into_projects(self.repo, transition, self.clock, self._who())

    def _due(self, record: dict[str, Any], now: datetime) -> bool:
        retry_at = _ts_or_none(record["retry_at"])
        return retry_at is not None and now >= retry_at

    def _probe_free(self, record: dict[str, Any], now: datetime) -> bool:
        in_flight = int(record.get("probes_in_flight") or 0)
        last = _ts_or_none(record.get("last_probe_at"))
        # A probe whose process died never reports back; after a recovery timeout its slot is
        # free again, or the breaker would stay half-open forever.
        if in_flight and last and (now - last).total_seconds() >= self.settings.recovery_timeout:
            record["probes_in_flight"] = in_flight = 0
        return in_flight < self.settings.half_open_requests

    def _open(
        self, record: dict[str, Any], now: datetime, reason: str, retry_at: datetime | None = None
    ) -> Transition:
        until = retry_at or now + timedelta(seconds=self.settings.recovery_timeout)
        record["probes_in_flight"] = 0
        record["retry_at"] = format_ts(until)
        return self._move(record, OPEN, reason, now)

    def _move(self, record: dict[str, Any], to: str, reason: str, now: datetime) -> Transition:
        before = str(record["state"])
        record.update(state=to, since=format_ts(now), reason=reason, changed_by=self._who())
        if to != OPEN:
            record["retry_at"] = None
        return Transition(self.service, before, to, reason, view(record))

    def _refusal(self, record: dict[str, Any], now: datetime) -> ProviderError:
        if record["state"] == OPEN:
            retry_at = _ts_or_none(record["retry_at"])
        else:
            last = _ts_or_none(record.get("last_probe_at")) or now
            retry_at = last + timedelta(seconds=self.settings.recovery_timeout)
        wait = None if retry_at is None else max((retry_at - now).total_seconds(), 0.0)
        when = "until an operator resets it" if retry_at is None else f"until {format_ts(retry_at)}"
        what = "open" if record["state"] == OPEN else "half-open with every probe slot taken"
        return ProviderError(
            f"circuit breaker {self.service} is {what} ({record['reason']}); no call made, "
            f"calls resume {when} (`somas breaker reset {self.service}` once it is healthy)",
            kind=CIRCUIT_OPEN,
            retry_after=wait,
            service=self.service,
        )


def _ts_or_none(value: Any) -> datetime | None:
    return parse_ts(value) if isinstance(value, str) else None


def known_services(config: Config, repo: Path) -> list[str]:
    """ai_api, github_api, every configured provider, and any other service in the file."""
    services = [*BUILTIN_SERVICES, *config.raw["agent_provider"]["providers"]]
    for name in BreakerStore(repo).read():
        if name not in services:
            services.append(name)
    return services
