"""Load and validate `.somas/config.yml` and `.somas/agents/<agent>.yml`, with defaults."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from somas_action.config.resources import default_somas_dir
from somas_action.config.schemas import first_problem
from somas_action.core import names
from somas_action.core.domain import JsonObject
from somas_action.core.errors import ConfigError
from somas_action.core.secrets import check_allowlist
from somas_action.core.settings import (
    AgentConfig,
    Config,
    QualityGate,
    StageConfig,
    from_mapping,
)

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_HANDLER_BY_STAGE = {"implementation": "implementation", "validation": "validation"}


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning every failure into one line naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; run `somas init` to create it") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        # libyaml's C loader when available: the pure-Python one costs ~10 ms per run here.
        return yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}; fix the YAML syntax") from None


@cache
def _default_stages() -> tuple[JsonObject, ...]:
    data = read_yaml(default_somas_dir() / names.CONFIG_FILE)
    return tuple(data["pipeline"]["stages"])


def config_path(repo: Path) -> Path:
    """Where a repository's config lives."""
    return repo / names.SOMAS_DIR / names.CONFIG_FILE


# Environment variables that override one config value (set by action.yml from its inputs).
ENV_OVERRIDES = {"SOMAS_STATE_BRANCH": ("state", "branch")}


def load_config(repo: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, default and validate the repository's config (the embedded default if absent).

    A variable of `ENV_OVERRIDES` that is set and not empty replaces its value before
    validation, so a bad value is refused like one written in the file.
    """
    path = config_path(repo)
    raw = read_yaml(path) if path.exists() else {}
    environment = os.environ if env is None else env
    for variable, (section, key) in ENV_OVERRIDES.items():
        value = environment.get(variable, "").strip()
        if not value or not isinstance(raw, dict):
            continue
        section_data = raw.get(section)
        section_data = section_data if isinstance(section_data, dict) else {}
        overridden = {**raw, section: {**section_data, key: value}}
        try:
            parse_config(overridden, path)
        except ConfigError as exc:
            raise ConfigError(f"{variable}={value!r} (overrides {section}.{key}): {exc}") from None
        raw = overridden
    return parse_config(raw, path)


def parse_config(raw: Any, path: Path) -> Config:
    """Validate a parsed config document and build the Config (defaults filled in)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping; see docs/configuration.md")
    data = copy.deepcopy(raw)
    problem = first_problem("config", data, fill_defaults=True)
    if problem:
        raise ConfigError(f"{path}: {problem}; see docs/configuration.md")
    pipeline = data["pipeline"]
    if "stages" not in pipeline:
        pipeline["stages"] = copy.deepcopy(list(_default_stages()))
        problem = first_problem("config", data, fill_defaults=True)
        if problem:  # pragma: no cover - the shipped default is tested
            raise ConfigError(f"embedded default config: {problem}")
    stages = tuple(_stage_config(stage) for stage in pipeline["stages"])
    _check_stage_references(stages, path)
    check_allowlist(data["validation"]["env"], f"{path}: validation.env")
    return from_mapping(Config, data, path=path, stages=stages)


def _stage_config(stage: JsonObject) -> StageConfig:
    return from_mapping(
        StageConfig,
        stage,
        handler=stage.get("handler") or _HANDLER_BY_STAGE.get(stage["name"], "generic"),
        on_reject=stage.get("on_reject") or stage["name"],
        quality_gates=tuple(from_mapping(QualityGate, gate) for gate in stage["quality_gates"]),
    )


def _check_stage_references(stages: tuple[StageConfig, ...], path: Path) -> None:
    seen: set[str] = set()
    for index, stage in enumerate(stages):
        where = f"{path}: pipeline.stages[{index}]"
        if stage.name in seen:
            raise ConfigError(f"{where}.name: duplicate stage {stage.name!r}; names must be unique")
        seen.add(stage.name)
        if stage.on_reject not in {s.name for s in stages[: index + 1]}:
            raise ConfigError(
                f"{where}.on_reject: {stage.on_reject!r} is not this stage or an earlier one"
            )


def agent_path(repo: Path, agent: str) -> Path:
    """Where agent `agent` is defined in a repository (falls back to the embedded default)."""
    local = repo / names.SOMAS_DIR / names.AGENTS_DIR / f"{agent}.yml"
    return local if local.exists() else default_somas_dir() / names.AGENTS_DIR / f"{agent}.yml"


def load_agent(repo: Path, agent: str) -> AgentConfig:
    """Read, default and validate one agent definition."""
    path = agent_path(repo, agent)
    if not path.exists():
        raise ConfigError(
            f"{repo / names.SOMAS_DIR / names.AGENTS_DIR / (agent + '.yml')}: agent {agent!r} "
            "is named in config.yml but not defined; create the file or fix the stage's agent"
        )
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping")
    problem = first_problem("agent", raw, fill_defaults=True)
    if problem:
        raise ConfigError(f"{path}: {problem}; see docs/configuration.md")
    if raw["name"] != agent:
        raise ConfigError(f"{path}: name: {raw['name']!r} does not match the file name {agent!r}")
    return from_mapping(AgentConfig, raw, path=path)


def load_agents(repo: Path, config: Config) -> dict[str, AgentConfig]:
    """Every agent the pipeline names, validated (so a bad agent file fails before any stage)."""
    wanted: list[str] = []
    for stage in config.stages:
        for agent in (stage.agent, *stage.secondary_agents):
            if agent not in wanted:
                wanted.append(agent)
    return {agent: load_agent(repo, agent) for agent in wanted}
