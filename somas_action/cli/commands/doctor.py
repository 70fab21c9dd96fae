"""`somas doctor`: the runbook's "Agent Not Responding" diagnosis, one line per finding."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypedDict

from somas_action.cli.commands import Subparsers
from somas_action.cli.output import echo
from somas_action.core import names
from somas_action.core.errors import ConfigError, SomasError

# Which environment variable (repository secret) each provider's key comes from.
PROVIDER_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "github-models": "GITHUB_TOKEN",
}
WORKFLOWS = ("somas-pipeline.yml", "somas-resume.yml", "somas-agent.yml")


def register(sub: Subparsers) -> None:
    """`somas doctor`."""
    p = sub.add_parser("doctor", help="check config, agents, keys, workflows and breakers")
    p.add_argument(
        "--github",
        action="store_true",
        help="also check GitHub-side setup (default when $GITHUB_REPOSITORY is set)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: run(a.repo, a.github, a.json))


class Line(TypedDict):
    """One line of `somas doctor`: ok, problem or skipped, what was checked, and why."""

    status: str
    check: str
    detail: str


def _line(ok: bool | None, check: str, detail: str) -> Line:
    return {
        "status": {True: "ok", False: "problem", None: "skipped"}[ok],
        "check": check,
        "detail": detail,
    }


def diagnose(repo: Path, github: bool, live: bool | None = None) -> list[Line]:
    """Every check as {status, check, detail}; `problem` lines name the file/field/secret."""
    from somas_action.config.loader import agent_path, config_path, parse_config, read_yaml
    from somas_action.config.schemas import problems

    lines: list[Line] = []
    path = config_path(repo)
    try:
        raw = read_yaml(path) if path.exists() else {}
        found = (
            problems("config", raw or {}, fill_defaults=True)
            if isinstance(raw, dict)
            else ["(top level): expected a mapping"]
        )
        for problem in found:
            lines.append(_line(False, "config", f"{path}: {problem}"))
        config = parse_config(raw, path)
    except ConfigError as exc:
        if not lines:
            lines.append(_line(False, "config", str(exc)))
        return lines
    lines.append(
        _line(
            True,
            "config",
            f"{path.name}: valid, {len(config.stages)} stages"
            + ("" if config.enabled else "; pipeline.enabled is false (emergency stop)"),
        )
    )
    if live is None:
        live = config.agent_provider.type != "recorded"
    agents = {a for s in config.stages for a in (s.agent, *s.secondary_agents)}
    for agent in sorted(agents):
        file = agent_path(repo, agent)
        if not file.exists():
            lines.append(_line(False, f"agent {agent}", f"{file}: missing; create it"))
            continue
        try:
            data = read_yaml(file)
        except ConfigError as exc:
            lines.append(_line(False, f"agent {agent}", str(exc)))
            continue
        found = (
            problems("agent", data, fill_defaults=True)
            if isinstance(data, dict)
            else ["(top level): expected a mapping"]
        )
        for problem in found:
            lines.append(_line(False, f"agent {agent}", f"{file}: {problem}"))
        if found:
            continue
        lines.append(_line(True, f"agent {agent}", f"{file.name}: valid"))
        for model in [data.get("model"), *data.get("fallback", [])]:
            if not model or model["provider"] == "recorded":
                continue
            secret = PROVIDER_KEYS[model["provider"]]
            if os.environ.get(secret):
                lines.append(_line(True, f"key {secret}", f"set (for {agent}: {model['name']})"))
            elif live:
                lines.append(
                    _line(
                        False,
                        f"key {secret}",
                        f"not set: add the repository secret {secret} "
                        f"(needed by {agent}: {model['provider']}/{model['name']})",
                    )
                )
    if not live:
        lines.append(
            _line(
                None,
                "provider keys",
                "no key needed (agent_provider.type is recorded)",
            )
        )
    lines += _github_checks(repo, github or bool(os.environ.get("GITHUB_REPOSITORY")))
    lines += _breaker_checks(repo)
    return lines


def _github_checks(repo: Path, enabled: bool) -> list[Line]:
    if not enabled:
        return [_line(None, "workflows", "local use: pass --github to check GitHub-side setup")]
    folder = repo / ".github" / "workflows"
    return [
        _line(True, f"workflow {name}", "present")
        if (folder / name).exists()
        else _line(False, f"workflow {name}", f"{folder / name}: missing; `somas init` writes it")
        for name in WORKFLOWS
    ]


def _breaker_checks(repo: Path) -> list[Line]:
    from somas_action.cli.commands.views import load_all

    open_breakers: dict[str, list[str]] = {}
    for pid, state, _error in load_all(repo):
        for service, breaker in (state["circuit_breakers"] if state else {}).items():
            if breaker["state"] == names.BREAKER_OPEN:
                open_breakers.setdefault(service, []).append(pid)
    if not open_breakers:
        return [_line(True, "circuit breakers", "none open")]
    return [
        _line(False, f"circuit breaker {service}", f"open (seen by {', '.join(pids)})")
        for service, pids in sorted(open_breakers.items())
    ]


def run(repo: Path, github: bool, as_json: bool) -> int:
    """Print the diagnosis; exit 1 if any line is a problem."""
    try:
        lines = diagnose(repo, github)
    except SomasError as exc:
        lines = [_line(False, "doctor", str(exc))]
    if as_json:
        print(json.dumps(lines, indent=2))
    else:
        for line in lines:
            mark = {"ok": "ok  ", "problem": "FAIL", "skipped": "--  "}[line["status"]]
            echo(f"{mark} {line['check']}: {line['detail']}")
    return 1 if any(line["status"] == "problem" for line in lines) else 0
