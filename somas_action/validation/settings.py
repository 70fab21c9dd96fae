"""The `validation` section of config.yml as plain typed values (defaults live in the schema)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from somas_action.sandbox.environment import check_allowlist
from somas_action.sandbox.isolation import IsolationMode


@dataclass(frozen=True)
class ValidationSettings:
    """How to run the repository's tests. `setup`/`command` None: detect from the tree."""

    setup: tuple[str, ...] | None
    command: str | None
    junit: str | None
    timeout_minutes: float
    per_test_timeout_seconds: float
    env: tuple[str, ...]
    isolation: IsolationMode
    read_only_paths: tuple[str, ...]

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> ValidationSettings:
        """From the schema-validated `validation` section (defaults already filled)."""
        setup = section["setup"]
        return cls(
            setup=None if setup is None else tuple(setup),
            command=section["command"],
            junit=section["junit"],
            timeout_minutes=float(section["timeout_minutes"]),
            per_test_timeout_seconds=float(section["per_test_timeout_seconds"]),
            env=check_allowlist(section["env"], "validation.env"),
            isolation=cast(IsolationMode, section["isolation"]),
            read_only_paths=tuple(section["read_only_paths"]),
        )
