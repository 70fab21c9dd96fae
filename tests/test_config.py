"""Config and agent files: defaults, validation on every load, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from somas_action.config.loader import load_agents, load_config
from somas_action.core import names
from somas_action.core.errors import ConfigError
from somas_action.core.settings import BreakerSettings


def _write_config(repo: Path, text: str) -> Path:
    path = repo / ".somas" / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_pipeline_has_seven_stages_with_defaults(somas_folder: Path) -> None:
    config = load_config(somas_folder)
    assert config.stage_names == names.DEFAULT_STAGES
    assert all(stage.max_retries == 3 for stage in config.stages)
    review = config.stage("review")
    assert review.human_gate and review.on_reject == "implementation"
    assert [s.name for s in config.stages if s.human_gate] == ["review"]
    assert config.error_handling.circuit_breaker == BreakerSettings(
        failure_threshold=5, recovery_timeout=60, half_open_requests=3
    )
    assert config.monitoring.alerts.thresholds.human_wait_time_hours == 48
    assert "pipeline_completed" in config.monitoring.notifications.notify_on
    # Defaults reach through $ref too: an empty monitoring section gets the notifications.
    from somas_action.config.loader import parse_config

    bare = parse_config({"monitoring": {}}, somas_folder / "x.yml")
    assert bare.monitoring.notifications.enabled is True
    assert set(load_agents(somas_folder, config)) >= {
        "intake-analyst",
        "implementer",
        "debugger",
        "releaser",
    }


def test_a_minimal_config_takes_every_default(tmp_path: Path) -> None:
    _write_config(tmp_path, "pipeline:\n  enabled: false\n")
    config = load_config(tmp_path)
    assert not config.enabled
    assert config.stage_names == names.DEFAULT_STAGES
    assert config.stage("validation").handler == "validation"
    assert config.error_handling.circuit_breaker.failure_threshold == 5


def test_custom_stage_defaults(tmp_path: Path) -> None:
    _write_config(tmp_path, "pipeline:\n  stages:\n    - {name: triage, agent: intake-analyst}\n")
    stage = load_config(tmp_path).stage("triage")
    assert (stage.max_retries, stage.timeout_minutes, stage.human_gate, stage.handler) == (
        3,
        30,
        False,
        "generic",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pipeline: [unclosed\n", r"config.yml: line 2 column 1: .*fix the YAML syntax"),
        (
            "pipeline:\n  stages:\n    - {name: intake, agent: a, max_retries: 0}\n",
            r"config.yml: pipeline.stages\[0\].max_retries: 0 is less than the minimum of 1",
        ),
        (
            "pipeline:\n  enabled: 'nope'\n",
            r"config.yml: pipeline.enabled: 'nope' is not of type 'boolean'",
        ),
        (
            "pipeline:\n  stages:\n    - {name: Intake!, agent: a}\n",
            r"pipeline.stages\[0\].name: 'Intake!' does not match",
        ),
        (
            "pipelin: {}\n",
            r"\(top level\): Additional properties are not allowed \('pipelin' was unexpected\)",
        ),
        (
            "error_handling:\n  circuit_breaker: {failure_threshold: -1}\n",
            r"error_handling.circuit_breaker.failure_threshold: -1 is less than the minimum",
        ),
        (
            "pipeline:\n  stages:\n    - {name: a, agent: x}\n    - {name: a, agent: x}\n",
            r"pipeline.stages\[1\].name: duplicate stage 'a'",
        ),
        (
            "pipeline:\n  stages:\n"
            "    - {name: a, agent: x, on_reject: b}\n    - {name: b, agent: x}\n",
            r"pipeline.stages\[0\].on_reject: 'b' is not this stage or an earlier one",
        ),
        ("- just\n- a list\n", r"\(top level\): expected a mapping"),
    ],
)
def test_invalid_config_is_one_line_naming_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    _write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(tmp_path)
    assert "\n" not in str(info.value)


def test_unknown_stage_names_the_valid_ones(somas_folder: Path) -> None:
    with pytest.raises(
        ConfigError, match="unknown stage 'deploy'; valid stages: intake, specification"
    ):
        load_config(somas_folder).stage("deploy")


def test_invalid_agent_file_names_file_and_field(somas_folder: Path) -> None:
    path = somas_folder / ".somas" / "agents" / "validator.yml"
    path.write_text(path.read_text().replace("provider: openai", "provider: openia", 1))
    with pytest.raises(
        ConfigError, match=r"agents/validator.yml: model.provider: 'openia' is not one of"
    ):
        load_agents(somas_folder, load_config(somas_folder))


def test_missing_agent_says_what_to_do(tmp_path: Path) -> None:
    _write_config(tmp_path, "pipeline:\n  stages:\n    - {name: a, agent: ghost}\n")
    with pytest.raises(ConfigError, match=r"agent 'ghost' is named in config\.yml but not defined"):
        load_agents(tmp_path, load_config(tmp_path))


def test_agent_name_must_match_its_file(somas_folder: Path) -> None:
    path = somas_folder / ".somas" / "agents" / "reviewer.yml"
    path.write_text(path.read_text().replace("name: reviewer", "name: critic", 1))
    with pytest.raises(ConfigError, match="name: 'critic' does not match the file name 'reviewer'"):
        load_agents(somas_folder, load_config(somas_folder))
