"""Typed configuration: what `config.yml` and the agent files say, built once after validation.

Defaults live only in the JSON Schemas (`schemas/config.schema.json`, `schemas/agent.schema.json`);
these classes have none of their own, and a test keeps their fields equal to the schemas'
properties. `config.loader` validates a document (filling the schema's defaults) and then builds
these values with `from_mapping`, so no module reads a raw config dict.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from somas_action.core.domain import JsonObject
from somas_action.core.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


# -- one backoff policy ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap: the wait after the n-th failure (n = 1, 2, ...)."""

    backoff_seconds: float
    backoff_multiplier: float
    max_backoff_seconds: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (capped)."""
        raw = self.backoff_seconds * self.backoff_multiplier ** max(failures - 1, 0)
        return float(min(raw, self.max_backoff_seconds))


# -- sections of config.yml --------------------------------------------------------------------


@dataclass(frozen=True)
class QualityGate:
    """One quality gate of a stage (`pipeline.stages[].quality_gates[]`)."""

    type: str
    name: str | None
    artifact: str | None
    field: str | None
    min_tests: int
    equals: str | None

    @property
    def label(self) -> str:
        """The gate's name, or `type:subject` when it has none."""
        if self.name:
            return self.name
        subject = self.artifact or self.field or self.equals
        return f"{self.type}:{subject}" if subject else self.type


@dataclass(frozen=True)
class StageConfig:
    """One pipeline stage as configured (`handler` and `on_reject` resolved)."""

    name: str
    agent: str
    secondary_agents: tuple[str, ...]
    handler: str
    human_gate: bool
    on_reject: str
    timeout_minutes: float
    max_retries: int
    artifacts: tuple[str, ...]
    quality_gates: tuple[QualityGate, ...]


@dataclass(frozen=True)
class PipelineSettings:
    """`pipeline` (its `stages` are `Config.stages`)."""

    enabled: bool
    retry: Backoff


@dataclass(frozen=True)
class ProviderSettings:
    """`agent_provider.providers.<provider>`."""

    base_url: str
    timeout_seconds: float


@dataclass(frozen=True)
class CallRetrySettings:
    """`agent_provider.retry`: retries of one model call inside one agent call."""

    max_calls: int
    backoff_seconds: float
    backoff_multiplier: float
    max_backoff_seconds: float
    max_wait_seconds: float

    @property
    def backoff(self) -> Backoff:
        """The wait between calls when the service names none."""
        return Backoff(self.backoff_seconds, self.backoff_multiplier, self.max_backoff_seconds)


@dataclass(frozen=True)
class BudgetLimits:
    """`agent_provider.budget`: the most one project may spend (None: no limit)."""

    max_cost_usd: float | None
    max_tokens: int | None

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self.max_cost_usd is not None or self.max_tokens is not None


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one model."""

    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class AgentProviderSettings:
    """`agent_provider`."""

    type: str
    recording: str
    providers: Mapping[str, ProviderSettings]
    retry: CallRetrySettings
    budget: BudgetLimits
    pricing: Mapping[str, Price]


@dataclass(frozen=True)
class WorkspaceSettings:
    """`workspace`: what agent-written files may be."""

    allowed_paths: tuple[str, ...]
    max_files: int
    max_file_bytes: int


@dataclass(frozen=True)
class BreakerSettings:
    """`error_handling.circuit_breaker`."""

    failure_threshold: int
    recovery_timeout: float
    half_open_requests: int


@dataclass(frozen=True)
class ErrorHandlingSettings:
    """`error_handling`."""

    circuit_breaker: BreakerSettings
    run_budget_seconds: float | None


@dataclass(frozen=True)
class AlertThresholds:
    """`monitoring.alerts.thresholds`."""

    pipeline_duration_hours: float
    error_rate_percent: float
    human_wait_time_hours: float


@dataclass(frozen=True)
class AlertSettings:
    """`monitoring.alerts`."""

    enabled: bool
    thresholds: AlertThresholds


@dataclass(frozen=True)
class NotificationSettings:
    """`monitoring.notifications`."""

    enabled: bool
    notify_on: tuple[str, ...]
    comment_per_stage: bool


@dataclass(frozen=True)
class MonitoringSettings:
    """`monitoring`."""

    alerts: AlertSettings
    notifications: NotificationSettings


@dataclass(frozen=True)
class EscalationRule:
    """How fast to respond to one severity, and what to do."""

    response_minutes: float
    actions: str


@dataclass(frozen=True)
class EscalationSettings:
    """`escalation`."""

    contact: str | None
    severities: Mapping[str, EscalationRule]


@dataclass(frozen=True)
class StateBranchSettings:
    """`state`: the branch every project's folder is committed to, and one run per project."""

    branch: str
    remote: str
    push: bool
    max_push_attempts: int
    push_backoff: Backoff
    push_deadline_seconds: float
    lease_wait_seconds: float


@dataclass(frozen=True)
class GitHubConfig:
    """`github`: how SOMAS talks to GitHub's REST API."""

    api_url: str | None
    min_seconds_between_writes: float
    max_rate_limit_wait_seconds: float
    max_retries: int
    retry_backoff: Backoff
    continuation_workflow: str
    bot_logins: tuple[str, ...]
    max_continuations: int


@dataclass(frozen=True)
class ToolLoopSettings:
    """`tool_loop`: bounds of the agents' repository tools and tool loop."""

    max_turns: int
    max_tool_output_chars: int
    max_minutes: float | None
    read_max_lines: int
    search_max_matches: int
    repo_map_chars: int
    diff_chars: int


@dataclass(frozen=True)
class EngineSettings:
    """`engines`: where pinned coding-agent CLIs are installed, and their MCP output cap."""

    tools_dir: str
    mcp_max_output_chars: int


@dataclass(frozen=True)
class SecuritySettings:
    """`security`: whose labels, comments and dispatches SOMAS obeys, and what strangers see."""

    allowed_roles: tuple[str, ...]
    outsider_reaction: str


# How repository code is isolated (`validation.isolation`; docs/sandbox.md).
IsolationMode = Literal["auto", "bubblewrap", "process-group"]


@dataclass(frozen=True)
class ValidationSettings:
    """`validation`: how to run the repository's own tests. `setup`/`command` None: detect."""

    setup: tuple[str, ...] | None
    command: str | None
    junit: str | None
    timeout_minutes: float
    per_test_timeout_seconds: float
    env: tuple[str, ...]
    isolation: IsolationMode
    read_only_paths: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """The whole validated configuration of a repository."""

    path: Path
    version: int
    stages: tuple[StageConfig, ...]
    pipeline: PipelineSettings
    agent_provider: AgentProviderSettings
    workspace: WorkspaceSettings
    error_handling: ErrorHandlingSettings
    monitoring: MonitoringSettings
    escalation: EscalationSettings
    state: StateBranchSettings
    github: GitHubConfig
    tool_loop: ToolLoopSettings
    engines: EngineSettings
    security: SecuritySettings
    validation: ValidationSettings

    @property
    def enabled(self) -> bool:
        """False when the runbook's emergency stop (`pipeline.enabled: false`) is set."""
        return self.pipeline.enabled

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The configured stage names, in pipeline order."""
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> StageConfig:
        """The stage called `name`, or a ConfigError naming the valid ones."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        valid = ", ".join(self.stage_names)
        raise ConfigError(f"{self.path}: unknown stage {name!r}; valid stages: {valid}")

    @property
    def services(self) -> tuple[str, ...]:
        """Every AI provider configured (each has a circuit breaker of its own)."""
        return tuple(self.agent_provider.providers)


# -- agent files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A model an agent calls: `provider/name`."""

    provider: str
    name: str

    @property
    def label(self) -> str:
        """`provider/name`."""
        return f"{self.provider}/{self.name}"

    def as_dict(self) -> dict[str, str]:
        """The JSON form recorded in events and dead letters."""
        return {"provider": self.provider, "name": self.name}


@dataclass(frozen=True)
class AgentConfig:
    """One agent definition (`.somas/agents/<name>.yml`)."""

    path: Path
    name: str
    description: str
    role: str
    instructions: str
    model: ModelRef | None
    fallback: tuple[ModelRef, ...]
    temperature: float
    max_output_tokens: int
    # A coding-agent CLI that acts as this agent (`providers.engines.spec` parses it).
    engine: JsonObject | None
    # The repository tools it works with (`none`, `read`, `edit`); None: by its role.
    tools: str | None

    @property
    def models(self) -> tuple[ModelRef, ...]:
        """The model chain: `model`, then each `fallback`, in order."""
        return tuple(m for m in (self.model, *self.fallback) if m is not None)


# -- building typed values from validated documents ---------------------------------------------


def from_mapping(cls: type[T], data: Mapping[str, Any], **given: Any) -> T:
    """Build dataclass `cls` from a schema-validated mapping (defaults already filled).

    Fields passed in `given` are taken as they are; every other field is read from `data` under
    its own name and converted to its annotated type (nested dataclasses, tuples, mappings,
    optional values).
    """
    hints = get_type_hints(cls)
    values = dict(given)
    for item in fields(cls):
        if item.name not in values:
            values[item.name] = _convert(hints[item.name], data.get(item.name))
    return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value)
    if isinstance(hint, type) and is_dataclass(hint):
        return from_mapping(hint, value)
    if origin is tuple:
        return tuple(_convert(args[0], item) for item in value or ())
    if origin is Mapping or origin is dict:
        return {key: _convert(args[1], item) for key, item in (value or {}).items()}
    if hint is float:
        return float(value)
    if hint is int:
        return int(value)
    return value
