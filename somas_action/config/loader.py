"""Load and validate `.somas/config.yml` and `.somas/agents/<agent>.yml`, with defaults."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from somas_action import __version__
from somas_action.config.resources import default_somas_dir, schemas_dir
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

_HANDLER_BY_STAGE = {"implementation": "implementation", "validation": "validation"}


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning every failure into one line naming the file and line."""
    # Imported here: commands that find their config in the cache never load PyYAML.
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; run `somas init` to create it") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        # libyaml's C loader when available: the pure-Python one costs ~10 ms per run here.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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
    validation, so a bad value is refused like one written in the file. A document validated
    before (same bytes, same overrides, same schema and SOMAS version) comes from the cache of
    validated configs, so read-only commands pay for neither YAML nor JSON Schema.
    """
    path = config_path(repo)
    environment = os.environ if env is None else env
    overrides = {
        variable: environment.get(variable, "").strip() for variable in sorted(ENV_OVERRIDES)
    }
    text = path.read_bytes() if path.is_file() else b""
    key = _cache_key(text, overrides)
    cached = _cached_document(key)
    if cached is not None:
        return build_config(cached, path)
    raw = read_yaml(path) if path.exists() else {}
    for variable, value in overrides.items():
        section, field = ENV_OVERRIDES[variable]
        if not value or not isinstance(raw, dict):
            continue
        section_data = raw.get(section)
        section_data = section_data if isinstance(section_data, dict) else {}
        overridden = {**raw, section: {**section_data, field: value}}
        try:
            validated_document(overridden, path)
        except ConfigError as exc:
            raise ConfigError(
                f"{variable}={value!r} (overrides {section}.{field}): {exc}"
            ) from None
        raw = overridden
    data = validated_document(raw, path)
    config = build_config(data, path)
    _remember_document(key, data)
    return config


def parse_config(raw: Any, path: Path) -> Config:
    """Validate a parsed config document and build the Config (defaults filled in)."""
    return build_config(validated_document(raw, path), path)


def validated_document(raw: Any, path: Path) -> JsonObject:
    """The document with every default filled in, or a ConfigError naming the first problem."""
    from somas_action.config.schemas import first_problem

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
    build_config(data, path)  # the checks the schema cannot express
    return data


def build_config(data: JsonObject, path: Path) -> Config:
    """The typed Config of a validated document (stage references and secrets checked)."""
    stages = tuple(_stage_config(stage) for stage in data["pipeline"]["stages"])
    _check_stage_references(stages, path)
    check_allowlist(data["validation"]["env"], f"{path}: validation.env")
    return from_mapping(Config, data, path=path, stages=stages)


# -- the cache of validated configs ---------------------------------------------------------


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "somas" / "config"


@cache
def _schema_digest() -> str:
    """The schema's bytes and the embedded default pipeline's (an absent `stages` takes it)."""
    digest = hashlib.sha256((schemas_dir() / "config.schema.json").read_bytes())
    digest.update((default_somas_dir() / names.CONFIG_FILE).read_bytes())
    return digest.hexdigest()


def _cache_key(text: bytes, overrides: Mapping[str, str]) -> str:
    """What a validated document depends on: the file, the overrides, the schema, SOMAS."""
    digest = hashlib.sha256(text)
    digest.update(json.dumps([overrides, _schema_digest(), __version__]).encode())
    return digest.hexdigest()


def _cached_document(key: str) -> JsonObject | None:
    try:
        data = json.loads((_cache_dir() / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remember_document(key: str, data: JsonObject) -> None:
    """Keep a validated document for the next command (a cache that cannot be written is no
    error: the next command validates again)."""
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, folder / f"{key}.json")
    except OSError:
        return


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
    from somas_action.config.schemas import first_problem

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
