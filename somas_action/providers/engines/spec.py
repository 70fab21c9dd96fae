"""An agent file's `engine:` section, read into a typed value with one-line errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from somas_action.core.errors import ConfigError

ENGINE_NAMES = ("claude-code", "codex", "gemini-cli", "aider", "command")
DEFAULT_MAX_TURNS = 30
DEFAULT_TIMEOUT_SECONDS = 1800
# An exact version: a tag such as "latest" or a range would make two runs differ silently.
_PINNED = re.compile(r"^\d+\.\d+\.\d+(?:[-+.][0-9A-Za-z.-]+)?$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


@dataclass(frozen=True)
class EngineSpec:
    """Which engine runs a stage, at which version, with which model and limits."""

    engine: str
    model: str
    version: str = ""
    max_turns: int = DEFAULT_MAX_TURNS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    extra_args: tuple[str, ...] = ()
    # `command` only: the executable (a name found on PATH, or a path) and its key's variable.
    command: str = ""
    key_env: str = ""
    # Where the engine sends model requests; empty means the engine's own default.
    base_url: str = ""


def parse_engine_spec(section: Mapping[str, Any], where: str) -> EngineSpec:
    """Read `section` (the `engine:` mapping of the agent file `where`) or raise ConfigError."""
    engine = _text(section, "engine", where, required=True)
    if engine not in ENGINE_NAMES:
        known = ", ".join(ENGINE_NAMES)
        raise ConfigError(f"{where}: engine.engine: {engine!r} is not one of {known}")
    spec = EngineSpec(
        engine=engine,
        model=_text(section, "model", where, required=True),
        version=_text(section, "version", where, required=engine != "command"),
        max_turns=_positive(section, "max_turns", where, DEFAULT_MAX_TURNS),
        timeout_seconds=_positive(section, "timeout_seconds", where, DEFAULT_TIMEOUT_SECONDS),
        extra_args=_args(section, where),
        command=_text(section, "command", where, required=engine == "command"),
        key_env=_text(section, "key_env", where, required=False),
        base_url=_text(section, "base_url", where, required=False),
    )
    _check_pins(spec, where)
    return spec


def check_pinned(version: str, where: str) -> None:
    """Raise ConfigError unless `version` is one exact version (not a tag or a range)."""
    if not _PINNED.match(version):
        raise ConfigError(
            f"{where}: engine.version: {version!r} is not an exact version; "
            "pin one such as 2.1.332 so every run installs the same engine"
        )


def _check_pins(spec: EngineSpec, where: str) -> None:
    if spec.version:
        check_pinned(spec.version, where)
    if spec.key_env and not _ENV_NAME.match(spec.key_env):
        raise ConfigError(
            f"{where}: engine.key_env: {spec.key_env!r} is not an environment variable name "
            "(capitals, digits and _)"
        )
    if spec.base_url and not spec.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: engine.base_url: {spec.base_url!r} must start with http(s)://")


def _text(section: Mapping[str, Any], name: str, where: str, *, required: bool) -> str:
    value = section.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise ConfigError(f"{where}: engine.{name}: must be {need}")
    return value.strip()


def _positive(section: Mapping[str, Any], name: str, where: str, default: int) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: engine.{name}: must be a positive whole number, not {value!r}")
    return value


def _args(section: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = section.get("extra_args", [])
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(f"{where}: engine.extra_args: must be a list of strings")
    return tuple(value)
