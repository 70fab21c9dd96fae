"""Agent-file engine sections, each engine's launch, and reading each engine's transcript."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from somas_action.config.loader import load_agent
from somas_action.core.errors import ConfigError
from somas_action.providers.engines.catalog import ENGINES, LaunchContext, McpEndpoint
from somas_action.providers.engines.install import install_engine
from somas_action.providers.engines.outcome import classify, read_transcript
from somas_action.providers.engines.process import ProcessResult
from somas_action.providers.engines.spec import EngineSpec, parse_engine_spec

WHERE = ".somas/agents/implementer.yml"
MCP = McpEndpoint("http://127.0.0.1:5000/mcp", "tok-123")


def context(tmp_path: Path, mcp: McpEndpoint | None = MCP) -> LaunchContext:
    """A launch context in `tmp_path`."""
    return LaunchContext("/tools/bin/engine", tmp_path / "home", tmp_path / "prompt.md", mcp)


def test_an_engine_section_is_read_with_its_defaults() -> None:
    spec = parse_engine_spec(
        {"engine": "claude-code", "version": "2.1.332", "model": "claude-sonnet-4-5"}, WHERE
    )
    assert spec == EngineSpec("claude-code", "claude-sonnet-4-5", "2.1.332", 30, 1800)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"engine": "cursor", "model": "m"}, "engine.engine: 'cursor' is not one of claude-code,"),
        ({"engine": "codex", "model": "m"}, "engine.version: must be a non-empty string"),
        (
            {"engine": "codex", "model": "m", "version": "latest"},
            "engine.version: 'latest' is not an exact version; pin one such as 2.1.332",
        ),
        ({"engine": "command", "model": "m"}, "engine.command: must be a non-empty string"),
        (
            {"engine": "aider", "model": "m", "version": "0.86.2", "max_turns": 0},
            "engine.max_turns: must be a positive whole number, not 0",
        ),
        (
            {"engine": "aider", "model": "m", "version": "0.86.2", "extra_args": "--x"},
            "engine.extra_args: must be a list of strings",
        ),
        (
            {"engine": "command", "model": "m", "command": "x", "key_env": "my key"},
            "engine.key_env: 'my key' is not an environment variable name",
        ),
    ],
)
def test_a_bad_engine_section_is_one_line_naming_the_file_and_field(
    section: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_engine_spec(section, WHERE)
    assert str(error.value).startswith(f"{WHERE}: {message}")
    assert "\n" not in str(error.value)


def test_claude_code_gets_turns_model_base_url_and_an_mcp_settings_file(tmp_path: Path) -> None:
    spec = EngineSpec(
        "claude-code",
        "sonnet",
        "2.1.332",
        7,
        60,
        ("--effort", "low"),
        base_url="http://127.0.0.1:9",
    )
    launch = ENGINES["claude-code"].launch(spec, context(tmp_path))

    assert launch.argv[:8] == (
        "/tools/bin/engine", "-p", "--output-format", "stream-json", "--verbose",
        "--max-turns", "7", "--model",
    )  # fmt: skip
    assert launch.argv[-2:] == ("--effort", "low")
    assert "--setting-sources" in launch.argv and "user" in launch.argv
    assert launch.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    server = json.loads(launch.files["mcp.json"])["mcpServers"]["somas"]
    assert server == {
        "type": "http",
        "url": MCP.url,
        "headers": {"Authorization": "Bearer tok-123"},
    }
    assert MCP.token not in " ".join(launch.argv)
    assert launch.prompt_on_stdin


def test_codex_is_configured_through_its_config_file(tmp_path: Path) -> None:
    spec = EngineSpec("codex", "gpt-5-codex", "0.171.0", base_url="http://127.0.0.1:9/v1")
    launch = ENGINES["codex"].launch(spec, context(tmp_path))

    config = tomllib.loads(launch.files[".codex/config.toml"])
    assert config["model_providers"]["somas"] == {
        "name": "somas", "base_url": "http://127.0.0.1:9/v1", "env_key": "OPENAI_API_KEY",
        "wire_api": "responses",
    }  # fmt: skip
    assert config["mcp_servers"]["somas"] == {
        "url": MCP.url,
        "bearer_token_env_var": "SOMAS_MCP_TOKEN",
    }
    assert launch.env == {
        "CODEX_HOME": str(tmp_path / "home" / ".codex"),
        "SOMAS_MCP_TOKEN": "tok-123",
    }
    assert launch.argv[1:3] == ("exec", "--json") and launch.argv[-1] == "-"


def test_gemini_cli_gets_its_turn_limit_and_auth_in_settings(tmp_path: Path) -> None:
    spec = EngineSpec("gemini-cli", "gemini-2.5-pro", "0.61.0", 9, base_url="http://127.0.0.1:9")
    launch = ENGINES["gemini-cli"].launch(spec, context(tmp_path, mcp=None))

    settings = json.loads(launch.files[".gemini/settings.json"])
    assert settings["model"] == {"maxSessionTurns": 9}
    assert settings["security"]["auth"] == {"selectedType": "gemini-api-key"}
    assert "mcpServers" not in settings
    assert launch.env == {"GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"}


def test_aider_reads_its_prompt_from_a_file_and_never_commits(tmp_path: Path) -> None:
    spec = EngineSpec("aider", "openai/gpt-4o", "0.86.2", base_url="http://127.0.0.1:9/v1")
    launch = ENGINES["aider"].launch(spec, context(tmp_path))

    assert launch.argv[1:3] == ("--message-file", str(tmp_path / "prompt.md"))
    assert "--no-auto-commits" in launch.argv
    assert not launch.prompt_on_stdin
    assert launch.env == {"OPENAI_API_BASE": "http://127.0.0.1:9/v1"}


def write(path: Path, *events: dict[str, object]) -> Path:
    """A transcript of `events`, with a progress line that is not JSON among them."""
    path.write_text("starting...\n" + "".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_codex_transcript_gives_usage_session_and_the_failure(tmp_path: Path) -> None:
    failure = "exceeded retry limit, last status: 429 Too Many Requests"
    path = write(
        tmp_path / "t.jsonl",
        {"type": "thread.started", "thread_id": "0199-thread"},
        {"type": "turn.started"},
        {"type": "error", "message": failure},
        {"type": "turn.failed", "error": {"message": failure}},
    )
    summary = read_transcript("codex", path)

    assert (summary.status, summary.session_id, summary.lines) == ("error", "0199-thread", 4)
    assert classify(summary, ProcessResult(1, False), "")[0] == "rate_limited"


def test_a_finished_codex_transcript_is_success(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        {"type": "item.completed", "item": {"type": "agent_message", "text": "Done."}},
        {"type": "turn.completed", "usage": {"input_tokens": 900, "output_tokens": 40}},
    )
    summary = read_transcript("codex", path)

    assert (summary.status, summary.last_text) == ("success", "Done.")
    assert (summary.usage.input_tokens, summary.usage.output_tokens) == (900, 40)
    assert classify(summary, ProcessResult(0, False), "") == ("success", "the engine finished")


def test_a_gemini_transcript_error_is_read_from_its_result_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        {"type": "init", "session_id": "cf6c", "model": "gemini-2.5-pro"},
        {
            "type": "result",
            "status": "error",
            "error": {"type": "unknown", "message": "[API Error: Quota exceeded for metric]"},
            "stats": {"input_tokens": 5},
        },
    )
    summary = read_transcript("gemini-cli", path)

    assert (summary.status, summary.session_id, summary.usage.input_tokens) == ("error", "cf6c", 5)
    assert classify(summary, ProcessResult(1, False), "")[0] == "quota"


def test_aider_exiting_zero_after_an_api_failure_is_a_crash(tmp_path: Path) -> None:
    summary = read_transcript("aider", write(tmp_path / "t.jsonl"))
    errors = "litellm.InternalServerError: OpenAIException - Invalid response object"

    assert classify(summary, ProcessResult(0, False), errors) == (
        "crash",
        "the engine failed: litellm.InternalServerError: OpenAIException - Invalid response object",
    )
    assert classify(summary, ProcessResult(0, False), "Applied edit to greet.py")[0] == "success"


def test_only_an_exact_version_of_a_known_engine_is_installed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"engine.version: '\^2.1' is not an exact version"):
        install_engine("claude-code", "^2.1", tmp_path)
    with pytest.raises(ConfigError, match="engine 'command' is not one SOMAS installs"):
        install_engine("command", "1.0.0", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_agent_file_with_an_engine_section_loads_and_parses(repo: Path) -> None:
    path = repo / ".somas" / "agents" / "implementer.yml"
    agent = yaml.safe_load(path.read_text())
    agent["engine"] = {"engine": "claude-code", "version": "2.1.332", "model": "sonnet"}
    path.write_text(yaml.safe_dump(agent))

    loaded = load_agent(repo, "implementer")
    spec = parse_engine_spec(loaded.engine or {}, str(loaded.path))

    assert (spec.engine, spec.version, spec.max_turns, spec.extra_args) == (
        "claude-code", "2.1.332", 30, (),
    )  # fmt: skip


def test_the_agent_schema_refuses_an_unpinned_engine(repo: Path) -> None:
    path = repo / ".somas" / "agents" / "implementer.yml"
    agent = yaml.safe_load(path.read_text())
    agent["engine"] = {"engine": "codex", "version": "latest", "model": "gpt-5"}
    path.write_text(yaml.safe_dump(agent))

    with pytest.raises(ConfigError, match=r"implementer.yml: engine.version: 'latest' does not"):
        load_agent(repo, "implementer")
