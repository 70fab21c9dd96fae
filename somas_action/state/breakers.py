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
from datetime import datetime
from pathlib import Path
from typing import TypedDict, cast

from somas_action.config.actor import default_actor
from somas_action.config.loader import load_config
from somas_action.config.schemas import first_problem
from somas_action.core import names
from somas_action.core.breaker import Breaker, BreakerRecord, Transition, new_record
from somas_action.core.clock import Clock, SystemClock
from somas_action.core.errors import ConfigError, StateError
from somas_action.core.settings import BreakerSettings, Config
from somas_action.state.jsonio import atomic_write_json, json_problem


class BreakersFile(TypedDict):
    """`.somas/breakers.json`."""

    version: int
    services: dict[str, BreakerRecord]


AI_API = names.AI_API
GITHUB_API = names.GITHUB_API
BUILTIN_SERVICES = (AI_API, GITHUB_API)
SERVICE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def breakers_path(repo: Path) -> Path:
    """`.somas/breakers.json` of a repository."""
    return repo / names.SOMAS_DIR / names.BREAKERS_FILE


class BreakerStore:
    """`.somas/breakers.json`, read and written under an exclusive lock."""

    def __init__(self, repo: Path) -> None:
        self.path = breakers_path(repo)

    def read(self) -> dict[str, BreakerRecord]:
        """Every service's record (no lock: a snapshot for display)."""
        return self._read()["services"]

    @contextmanager
    def update(self) -> Iterator[dict[str, BreakerRecord]]:
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

    def _read(self) -> BreakersFile:
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
        return cast(BreakersFile, data)


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
    """The breaker of one service, persisted (the runbook's `CircuitBreaker`, without the mirror).

    `CircuitBreaker(service_name="ai_api")` alone finds the repository (current folder or
    `$SOMAS_REPO`) and reads its config; runs inject the repository, clock and settings. Every
    method runs the pure policy of `core.breaker` on the locked record and returns the
    transition it made; recording it in projects is the caller's business (see
    `pipeline.breaker_mirror` and the runbook facade `somas.core.circuit_breaker`).
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
        settings = settings or load_config(self.repo).error_handling.circuit_breaker
        self.policy = Breaker(service_name, settings, actor or default_actor())
        self.store = BreakerStore(self.repo)

    @property
    def settings(self) -> BreakerSettings:
        """`error_handling.circuit_breaker` as this breaker applies it."""
        return self.policy.settings

    @contextmanager
    def _locked(self) -> Iterator[BreakerRecord]:
        with self.store.update() as services:
            yield services.setdefault(self.service, new_record())

    def record(self) -> BreakerRecord:
        """The persisted record (a fresh closed one if the service never failed)."""
        return self.store.read().get(self.service) or new_record()

    def current_state(self) -> str:
        """closed, open or half_open (an open breaker past its retry time counts as half_open)."""
        return self.policy.current_state(self.record(), self.clock.now())

    def blocked_until(self) -> tuple[bool, datetime | None]:
        """(True, when calls may resume or None if tripped) while calls would be refused now."""
        return self.policy.blocked_until(self.record(), self.clock.now())

    def acquire(self) -> Transition | None:
        """Let one call through, or raise ProviderError(circuit_open) without any call made."""
        now = self.clock.now()
        with self._locked() as record:
            return self.policy.acquire(record, now)

    def record_success(self) -> Transition | None:
        """A call succeeded: a half-open breaker closes, a closed one forgets its failures."""
        now = self.clock.now()
        with self._locked() as record:
            return self.policy.record_success(record, now)

    def record_failure(self, kind: str, message: str) -> Transition | None:
        """A counted failure (timeout, 5xx, 429, connection): may open the breaker."""
        now = self.clock.now()
        with self._locked() as record:
            return self.policy.record_failure(record, now, kind, message)

    def release(self) -> None:
        """A call ended with no verdict on the service (cancelled, 400, 401): free its probe."""
        with self.store.update() as services:
            record = services.get(self.service)
            if record is not None:
                self.policy.release(record)

    def open_until(self, until: datetime, reason: str) -> Transition | None:
        """Refuse calls until `until` (a Retry-After longer than a run can wait)."""
        now = self.clock.now()
        with self._locked() as record:
            return self.policy.open_until(record, now, until, reason)

    def reset(self) -> Transition:
        """Force the breaker closed (the service is verified healthy)."""
        now = self.clock.now()
        with self._locked() as record:
            return self.policy.reset(record, now)

    def trip(self) -> Transition:
        """Force the breaker open until `reset()` (no calls at all)."""
        now = self.clock.now()
        with self._locked() as record:
            return self.policy.trip(record, now)


def known_services(config: Config, repo: Path) -> list[str]:
    """ai_api, github_api, every configured provider, and any other service in the file."""
    services = [*BUILTIN_SERVICES, *config.services]
    for name in BreakerStore(repo).read():
        if name not in services:
            services.append(name)
    return services
