"""Scenarios for the live provider: a repository configured to call the fake AI server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.fakes.ai_server import FakeAIServer

OPENAI_KEY = "sk-test-OPENAI-5f0c2b9e41d7a8c3"
ANTHROPIC_KEY = "sk-ant-test-ANTHROPIC-9d2e7a61c0b4f835"
GITHUB_TOKEN = "ghs_test_GITHUB_3c1d9e0f7a2b5c48"
INTAKE_ONLY: list[dict[str, Any]] = [
    {
        "name": "intake",
        "agent": "intake-analyst",
        "max_retries": 3,
        "quality_gates": [{"type": "output_field", "field": "requirements"}],
    }
]


def configure(
    repo: Path,
    server: FakeAIServer,
    *,
    stages: list[dict[str, Any]] | None = None,
    timeout: float = 5.0,
    breaker: dict[str, Any] | None = None,
    **agent_provider: Any,
) -> None:
    """Point the repository's config at the fake server (live provider)."""
    path = repo / ".somas" / "config.yml"
    config = yaml.safe_load(path.read_text())
    config["agent_provider"] = {
        "type": "live",
        "providers": {
            "openai": {"base_url": f"{server.url}/v1", "timeout_seconds": timeout},
            "anthropic": {"base_url": server.url, "timeout_seconds": timeout},
            "github-models": {"base_url": f"{server.url}/v1", "timeout_seconds": timeout},
        },
        **agent_provider,
    }
    if stages is not None:
        config["pipeline"]["stages"] = stages
    if breaker is not None:
        config["error_handling"]["circuit_breaker"].update(breaker)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def set_chain(repo: Path, agent: str, *models: tuple[str, str]) -> None:
    """Give an agent the model chain `models` (first = primary, then fallbacks)."""
    path = repo / ".somas" / "agents" / f"{agent}.yml"
    data = yaml.safe_load(path.read_text())
    chain = [{"provider": p, "name": n} for p, n in models]
    data["model"], data["fallback"] = chain[0], chain[1:]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def without_tools(repo: Path, *agents: str) -> None:
    """Make agents answer with one structured reply (`tools: none`), not through a tool loop."""
    for agent in agents:
        path = repo / ".somas" / "agents" / f"{agent}.yml"
        data = yaml.safe_load(path.read_text())
        data["tools"] = "none"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
