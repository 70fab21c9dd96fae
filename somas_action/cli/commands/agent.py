"""`somas agent-run`: one agent call with an operator's instructions, recording nothing.

The read-only job of somas-agent.yml runs it (no write token); the job after it applies the
reply through `somas handle-event`, where it is validated like any agent reply.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from somas_action.cli.commands import Subparsers
from somas_action.cli.output import echo
from somas_action.core.domain import JsonObject
from somas_action.core.errors import ConfigError
from somas_action.core.names import validate_project_id
from somas_action.state.jsonio import atomic_write_json, json_problem

FIELDS = ("project_id", "agent", "stage", "instructions")


def register(sub: Subparsers) -> None:
    """`somas agent-run`."""
    p = sub.add_parser("agent-run", help="call one agent for a project's stage; record nothing")
    p.add_argument(
        "--from-event",
        action="store_true",
        help="take project_id, agent, stage, instructions from the dispatch event",
    )
    p.add_argument("--project-id")
    p.add_argument("--agent")
    p.add_argument("--stage")
    p.add_argument("--instructions", default="")
    p.add_argument("--output", type=Path, required=True, help="where to write the reply (JSON)")
    p.set_defaults(func=run)


def _request(args: argparse.Namespace) -> dict[str, str]:
    if not args.from_event:
        values = {name: getattr(args, name) or "" for name in FIELDS}
    else:
        path = os.environ.get("GITHUB_EVENT_PATH", "")
        if not path:
            raise ConfigError("GITHUB_EVENT_PATH: not set; --from-event runs inside Actions")
        try:
            inputs = json.loads(Path(path).read_text(encoding="utf-8")).get("inputs") or {}
        except (OSError, ValueError) as exc:
            detail = json_problem(exc) if isinstance(exc, ValueError) else str(exc)
            raise ConfigError(f"{path}: cannot read the event ({detail})") from None
        values = {name: str(inputs.get(name) or "") for name in FIELDS}
    validate_project_id(values["project_id"])
    return values


def run(args: argparse.Namespace) -> int:
    """Call the agent and write `{project_id, agent, stage, instructions, reply}`."""
    from somas_action.app.compose import build_runner
    from somas_action.config.schemas import first_problem
    from somas_action.state.state_branch import StateBranch

    request = _request(args)
    document: JsonObject = {**request, "reply": {}}
    problem = first_problem("agent_reply", document)
    if problem:
        raise ConfigError(f"agent-run: {problem}")
    repo: Path = args.repo
    runner = build_runner(repo)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # The project's state lives on the state branch; bring its folder into the checkout.
        StateBranch(repo, runner.s.clock, runner.s.config.state).pull(request["project_id"])
    document["reply"] = runner.invoke_agent(
        request["project_id"], request["agent"], request["stage"], request["instructions"]
    )
    output = args.output if args.output.is_absolute() else repo / args.output
    atomic_write_json(output, document)
    echo(f"{request['agent']} replied for {request['project_id']} {request['stage']}: {output}")
    return 0
