"""What SOMAS knows about each engine: its package, its flags, its key and its settings files.

Each engine gets a `Launch`: the argv, the few variables it needs beyond its key, and the
settings files to write into its private home. Nothing here runs anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from somas_action.providers.engines.spec import EngineSpec

MCP_SERVER_NAME = "somas"


@dataclass(frozen=True)
class McpEndpoint:
    """SOMAS's MCP server as an engine reaches it: a URL and the bearer token it requires."""

    url: str
    token: str


@dataclass(frozen=True)
class LaunchContext:
    """Where this run's engine lives: its executable, private home and prompt file."""

    executable: str
    home: Path
    prompt_file: Path
    mcp: McpEndpoint | None = None


@dataclass(frozen=True)
class Launch:
    """How to start the engine: argv, extra variables, files under its home, prompt on stdin."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    prompt_on_stdin: bool = True


@dataclass(frozen=True)
class EngineKind:
    """One engine: where it is installed from and how it is driven."""

    name: str
    registry: str  # "npm", "pypi" or "" (a command the user provides)
    package: str
    binary: str  # the executable's path inside its tool folder
    key_env: str  # the variable its model key travels in
    base_url_env: str  # the variable that points it at another model server ("" = config file)
    wire_api: str
    launch: Callable[[EngineSpec, LaunchContext], Launch]


def _claude_code(spec: EngineSpec, ctx: LaunchContext) -> Launch:
    argv = [ctx.executable, "-p", "--output-format", "stream-json", "--verbose"]
    argv += ["--max-turns", str(spec.max_turns), "--model", spec.model]
    # Edits are accepted; anything that would ask a person is refused (no one is there).
    # Only SOMAS's (empty) user settings load: a repository's .claude/settings.json could
    # otherwise define hooks, i.e. commands chosen by whoever wrote the branch.
    argv += ["--permission-mode", "acceptEdits", "--setting-sources", "user"]
    files: dict[str, str] = {}
    if ctx.mcp is not None:
        files["mcp.json"] = json.dumps({"mcpServers": {MCP_SERVER_NAME: _mcp_http(ctx.mcp)}})
        argv += ["--mcp-config", str(ctx.home / "mcp.json"), "--strict-mcp-config"]
        argv += ["--allowedTools", f"mcp__{MCP_SERVER_NAME}"]
    env = {
        # No telemetry, error reports, update checks or other calls beyond the model server.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    if spec.base_url:
        env["ANTHROPIC_BASE_URL"] = spec.base_url
    return Launch((*argv, *spec.extra_args), env, files)


def _mcp_http(mcp: McpEndpoint) -> dict[str, object]:
    return {"type": "http", "url": mcp.url, "headers": {"Authorization": f"Bearer {mcp.token}"}}


def _codex(spec: EngineSpec, ctx: LaunchContext) -> Launch:
    lines = [
        f"model = {json.dumps(spec.model)}",
        'model_provider = "somas"',
        "check_for_update_on_startup = false",
        "[model_providers.somas]",
        'name = "somas"',
        f"base_url = {json.dumps(spec.base_url or 'https://api.openai.com/v1')}",
        'env_key = "OPENAI_API_KEY"',
        'wire_api = "responses"',
    ]
    env = {"CODEX_HOME": str(ctx.home / ".codex")}
    if ctx.mcp is not None:
        lines += [f"[mcp_servers.{MCP_SERVER_NAME}]", f"url = {json.dumps(ctx.mcp.url)}"]
        lines.append('bearer_token_env_var = "SOMAS_MCP_TOKEN"')
        env["SOMAS_MCP_TOKEN"] = ctx.mcp.token
    # Codex has no turn limit of its own: SOMAS's timeout is the bound. "-" reads the prompt
    # from stdin; SOMAS's sandbox, not Codex's, confines it.
    argv = [ctx.executable, "exec", "--json", "--dangerously-bypass-approvals-and-sandbox"]
    files = {".codex/config.toml": "\n".join(lines) + "\n"}
    return Launch((*argv, *spec.extra_args, "-"), env, files)


def _gemini_cli(spec: EngineSpec, ctx: LaunchContext) -> Launch:
    settings: dict[str, object] = {
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "general": {"disableAutoUpdate": True},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "model": {"maxSessionTurns": spec.max_turns},
    }
    if ctx.mcp is not None:
        settings["mcpServers"] = {
            MCP_SERVER_NAME: {
                "httpUrl": ctx.mcp.url,
                "headers": {"Authorization": f"Bearer {ctx.mcp.token}"},
                "trust": True,
            }
        }
    env = {"GOOGLE_GEMINI_BASE_URL": spec.base_url} if spec.base_url else {}
    argv = (ctx.executable, "--output-format", "stream-json", "-m", spec.model, "--yolo")
    files = {".gemini/settings.json": json.dumps(settings, indent=2)}
    return Launch((*argv, *spec.extra_args), env, files)


def _aider(spec: EngineSpec, ctx: LaunchContext) -> Launch:
    argv = [ctx.executable, "--message-file", str(ctx.prompt_file), "--model", spec.model]
    # aider commits on its own by default; SOMAS commits the diff through its own checks.
    argv += ["--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore"]
    argv += ["--no-check-update", "--no-show-model-warnings", "--no-analytics", "--no-pretty"]
    env = {"OPENAI_API_BASE": spec.base_url} if spec.base_url else {}
    return Launch((*argv, *spec.extra_args), env, {}, prompt_on_stdin=False)


def _command(spec: EngineSpec, ctx: LaunchContext) -> Launch:
    env = {
        "SOMAS_PROMPT_FILE": str(ctx.prompt_file),
        "SOMAS_MODEL": spec.model,
        "SOMAS_MAX_TURNS": str(spec.max_turns),
    }
    if spec.base_url:
        env["SOMAS_MODEL_BASE_URL"] = spec.base_url
    if ctx.mcp is not None:
        env |= {"SOMAS_MCP_URL": ctx.mcp.url, "SOMAS_MCP_TOKEN": ctx.mcp.token}
    return Launch((ctx.executable, *spec.extra_args), env, {})


ENGINES: dict[str, EngineKind] = {
    kind.name: kind
    for kind in (
        EngineKind(
            "claude-code",
            "npm",
            "@anthropic-ai/claude-code",
            "node_modules/.bin/claude",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "Anthropic Messages, streaming SSE",
            _claude_code,
        ),
        EngineKind(
            "codex",
            "npm",
            "@openai/codex",
            "node_modules/.bin/codex",
            "OPENAI_API_KEY",
            "",
            "OpenAI Responses, streaming SSE",
            _codex,
        ),
        EngineKind(
            "gemini-cli",
            "npm",
            "@google/gemini-cli",
            "node_modules/.bin/gemini",
            "GEMINI_API_KEY",
            "GOOGLE_GEMINI_BASE_URL",
            "Gemini streamGenerateContent, SSE",
            _gemini_cli,
        ),
        EngineKind(
            "aider",
            "pypi",
            "aider-chat",
            "bin/aider",
            "OPENAI_API_KEY",
            "OPENAI_API_BASE",
            "OpenAI Chat Completions (through litellm)",
            _aider,
        ),
        EngineKind("command", "", "", "", "", "", "whatever the command speaks", _command),
    )
}


def key_env_for(spec: EngineSpec) -> str:
    """The variable the engine's model key travels in ("" for a command that needs none)."""
    return spec.key_env or ENGINES[spec.engine].key_env
