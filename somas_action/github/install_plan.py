"""What the composite action installs and prepares for one job, decided before SOMAS is installed.

`action.yml` runs this file with the Python that `actions/setup-python` set up, before any
package is installed: it imports only the pure core (standard library only), so that the event's
meaning is decided by the same code as at run time (`core.triggers`). It prints `name=value`
lines for `$GITHUB_OUTPUT`:

- `key`: the cache key of SOMAS's virtualenv: the platform, the exact Python, SOMAS's version
  and a digest of everything the wheel is built from, and the extras; a different SOMAS commit
  is a different key, so a cached virtualenv never runs other code than the pinned one;
- `extras`: the optional dependencies the job needs: the AI SDKs only when the job may run an
  agent (an advancing command) and the repository's config calls live models
  (`agent_provider.type: live`; the recorded provider needs none); nothing for authorization,
  answers, status or the monitor;
  the `engines` extra (the MCP server for coding-agent CLIs) when an agent file has an
  `engine:` section;
- `sandbox`: whether the job may run repository or agent code (then bubblewrap is prepared).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file: the action's folder holds the package
    sys.path.insert(0, str(ROOT))

from somas_action.core.triggers import ADVANCING, PayloadError, Trigger, from_event  # noqa: E402

# Commands that may call an agent or run repository code; every other one needs neither.
AGENT_COMMANDS = ("handle-event", "agent-run")
AGENT_EXTRAS = "anthropic,openai"
# `agent_provider.type: live` is the only `type: live` the config schema allows, so the text
# says it without a YAML parser (which is not installed yet).
_LIVE = re.compile(r"""\btype:\s*["']?live\b""")
# An agent file's top-level `engine:` section (docs/engines.md), found the same way.
_ENGINE = re.compile(r"^engine:", re.M)
# What the wheel is built from (pyproject.toml's wheel target and its force-include).
_SOURCES: tuple[str, ...] = ("pyproject.toml", "somas_action", "somas", "schemas")
_SOURCES += (".somas/config.yml", ".somas/agents")


@dataclass(frozen=True)
class Plan:
    """One job's install: its cache key, the extras, whether to prepare the sandbox."""

    key: str
    extras: str
    sandbox: bool

    def lines(self) -> str:
        """`$GITHUB_OUTPUT` lines."""
        return f"key={self.key}\nextras={self.extras}\nsandbox={str(self.sandbox).lower()}\n"


def runs_agents(command: str, event_name: str, payload: Mapping[str, Any] | None) -> bool:
    """Whether the job may call an agent or run repository code (unsure: yes)."""
    words = command.split()
    if not words or words[0] not in AGENT_COMMANDS:
        return False
    if words[0] != "handle-event" or payload is None:
        return True
    try:
        outcome = from_event(event_name, payload)
    except (PayloadError, ValueError, KeyError, TypeError):
        return True  # the run itself will say what is wrong; install what it could need
    return isinstance(outcome, Trigger) and outcome.verb in ADVANCING


def source_digest(root: Path) -> str:
    """sha256 over every file the wheel is built from (paths and bytes, in a fixed order)."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        base = root / name
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.hexdigest()


def version(root: Path) -> str:
    """SOMAS's version as pyproject.toml states it."""
    found = re.search(r'^version = "([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
    return found.group(1) if found else "0"


def calls_live_models(repository: Path) -> bool:
    """Whether the repository's `.somas/config.yml` asks for live models."""
    try:
        text = (repository / ".somas" / "config.yml").read_text(encoding="utf-8")
    except OSError:
        return False  # the built-in default config replays a recording
    return bool(_LIVE.search(text))


def uses_engines(repository: Path) -> bool:
    """Whether an agent file of the repository runs its agent as an engine."""
    folder = repository / ".somas" / "agents"
    try:
        files = sorted(folder.glob("*.yml"))
        return any(_ENGINE.search(f.read_text(encoding="utf-8")) for f in files)
    except OSError:
        return False


def plan(
    command: str,
    event_name: str,
    payload: Mapping[str, Any] | None,
    python_version: str,
    repository: Path,
) -> Plan:
    """The install one job needs."""
    agents = runs_agents(command, event_name, payload)
    wanted = [AGENT_EXTRAS] if agents and calls_live_models(repository) else []
    if agents and uses_engines(repository):
        wanted.append("engines")
    extras = ",".join(wanted)
    system = f"{platform.system()}-{platform.machine()}".lower()
    key = (
        f"somas-venv-{system}-py{python_version}-{version(ROOT)}-"
        f"{source_digest(ROOT)[:16]}-{extras.replace(',', '-') or 'base'}"
    )
    return Plan(key=key, extras=extras, sandbox=agents)


def _payload(path: str) -> Mapping[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(env: Mapping[str, str]) -> int:
    """Print the plan for the job the environment describes."""
    python_version = env.get("SOMAS_PYTHON_VERSION") or platform.python_version()
    result = plan(
        env.get("SOMAS_COMMAND", "handle-event"),
        env.get("GITHUB_EVENT_NAME", ""),
        _payload(env.get("GITHUB_EVENT_PATH", "")),
        python_version,
        Path(env.get("SOMAS_REPOSITORY_PATH") or "."),
    )
    sys.stdout.write(result.lines())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(os.environ))
