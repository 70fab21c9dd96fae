"""Guards that keep the documented interfaces true: commands, action inputs, types vs schemas."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from somas_action.cli import main as cli
from somas_action.config.loader import load_config
from somas_action.config.schemas import load_schema
from somas_action.core import domain, settings

ROOT = Path(__file__).resolve().parent.parent


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_the_lazy_command_table_names_exactly_what_each_module_registers() -> None:
    for module in set(cli.COMMANDS.values()):
        registered = set(
            _subparsers(cli._parser(next(c for c, m in cli.COMMANDS.items() if m == module)))
        )
        assert registered == {c for c, m in cli.COMMANDS.items() if m == module}, module


def _readme_rows() -> list[tuple[set[str], bool]]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| command | what it does | `--json` |") :].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        command_cell, _, json_cell = line.strip("|").split(" | ")
        words = set()
        for span in re.findall(r"`([^`]+)`", command_cell):
            parts = span.split()
            words.add(parts[1] if parts[0] == "somas" else parts[0])
        rows.append((words, json_cell.strip() == "yes"))
    return rows


def test_every_readme_command_is_real_and_every_command_is_in_the_readme() -> None:
    commands = _subparsers(cli._parser())
    named = set().union(*(words for words, _ in _readme_rows()))
    assert named == set(commands)


def test_the_readme_says_truly_which_commands_take_json() -> None:
    commands = _subparsers(cli._parser())
    for words, has_json in _readme_rows():
        for word in words:
            parsers = [commands[word], *_subparsers(commands[word]).values()]
            offers = {"--json" in _options(p) for p in parsers if p is not commands[word]} or {
                "--json" in _options(commands[word])
            }
            assert offers == {has_json}, f"README says --json {has_json} for {word}"


def _action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
    return data


def _package_text() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "somas_action").rglob("*.py"))


def test_every_action_input_reaches_code_that_reads_it() -> None:
    action = _action()
    steps = action["runs"]["steps"]
    package = _package_text()
    for name in action["inputs"]:
        reference = f"${{{{ inputs.{name} }}}}"
        users = []
        for step in steps:
            condition = str(step.get("if", ""))
            if f"inputs.{name}" in condition:
                users.append("if")
            for key, value in (step.get("with") or {}).items():
                if reference in str(value):
                    users.append(f"with.{key}")
            for variable, value in (step.get("env") or {}).items():
                if reference not in str(value):
                    continue
                scripts = " ".join(str(s.get("run", "")) for s in steps)
                assert f'"${variable}"' in scripts or f'"{variable}"' in package, (
                    f"action input {name} sets ${variable}, which nothing reads"
                )
                users.append(variable)
        assert users, f"action input {name} is used by no step"


def test_the_state_branch_input_overrides_the_config(tmp_path: Path) -> None:
    assert load_config(tmp_path, env={}).state.branch == "somas/state"
    chosen = load_config(tmp_path, env={"SOMAS_STATE_BRANCH": "ops/somas-state"})
    assert chosen.state.branch == "ops/somas-state"
    with pytest.raises(Exception, match=r"SOMAS_STATE_BRANCH='a\.\.b' \(overrides state\.branch\)"):
        load_config(tmp_path, env={"SOMAS_STATE_BRANCH": "a..b"})


# -- the domain types and the schemas describe the same files -----------------------------


def _keys(typed: Any) -> tuple[set[str], set[str]]:
    """(all keys, required keys) of a TypedDict."""
    required = set(typed.__required_keys__)
    return required | set(typed.__optional_keys__), required


@pytest.mark.parametrize(
    ("typed", "schema", "path", "exclude"),
    [
        (domain.Event, "event", (), set()),
        (domain.State, "state", (), {"projection_sha256"}),
        (domain.StageRecord, "state", ("stages", "additionalProperties"), set()),
        (domain.RecoveryInfo, "state", ("recovery_info",), set()),
        (domain.LastEvent, "state", ("last_event",), set()),
    ],
)
def test_domain_types_match_the_file_schemas(
    typed: type, schema: str, path: tuple[str, ...], exclude: set[str]
) -> None:
    node = load_schema(schema)
    for step in path:
        node = node["properties"][step] if step != "additionalProperties" else node[step]
    keys, required = _keys(typed)
    assert keys == set(node["properties"]) - exclude
    assert required == set(node.get("required", [])) - exclude


# (class, path in the config schema, fields not in the schema, schema keys not in the class)
_SECTIONS: list[tuple[type, tuple[str, ...], set[str], set[str]]] = [
    (settings.Config, (), {"path", "stages"}, set()),
    (settings.PipelineSettings, ("pipeline",), set(), {"stages"}),
    (settings.Backoff, ("pipeline", "retry"), set(), set()),
    (settings.AgentProviderSettings, ("agent_provider",), set(), set()),
    (settings.CallRetrySettings, ("agent_provider", "retry"), set(), set()),
    (settings.BudgetLimits, ("agent_provider", "budget"), set(), set()),
    (settings.WorkspaceSettings, ("workspace",), set(), set()),
    (settings.ErrorHandlingSettings, ("error_handling",), set(), set()),
    (settings.BreakerSettings, ("error_handling", "circuit_breaker"), set(), set()),
    (settings.MonitoringSettings, ("monitoring",), set(), set()),
    (settings.AlertSettings, ("monitoring", "alerts"), set(), set()),
    (settings.AlertThresholds, ("monitoring", "alerts", "thresholds"), set(), set()),
    (settings.EscalationSettings, ("escalation",), set(), set()),
    (settings.StateBranchSettings, ("state",), set(), set()),
    (settings.Backoff, ("state", "push_backoff"), set(), set()),
    (settings.GitHubConfig, ("github",), set(), set()),
    (settings.Backoff, ("github", "retry_backoff"), set(), set()),
    (settings.EngineSettings, ("engines",), set(), set()),
    (settings.SecuritySettings, ("security",), set(), set()),
    (settings.ValidationSettings, ("validation",), set(), set()),
    (settings.ToolLoopSettings, ("tool_loop",), set(), set()),
]


@pytest.mark.parametrize(("cls", "path", "extra_fields", "extra_keys"), _SECTIONS)
def test_settings_classes_match_the_config_schema_and_hold_no_defaults(
    cls: type, path: tuple[str, ...], extra_fields: set[str], extra_keys: set[str]
) -> None:
    node = load_schema("config")
    for step in path:
        node = node["properties"][step]
    fields = dataclasses.fields(cls)
    assert {f.name for f in fields} - extra_fields == set(node["properties"]) - extra_keys
    # Defaults live in the schema only.
    assert all(
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in fields
    )


def test_the_agent_config_class_matches_the_agent_schema() -> None:
    fields = {f.name for f in dataclasses.fields(settings.AgentConfig)} - {"path"}
    assert fields == set(load_schema("agent")["properties"])
