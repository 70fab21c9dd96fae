"""`somas handle-event` and `somas setup-labels`: the GitHub Actions entry points."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from somas_action.cli.commands import Subparsers
from somas_action.core.errors import ConfigError
from somas_action.github import actions_runtime
from somas_action.state.jsonio import json_problem

if TYPE_CHECKING:
    from somas_action.core.clock import Clock
    from somas_action.core.settings import Config
    from somas_action.core.triggers import Outcome
    from somas_action.github.api import GitHubSettings

# PyGithub, requests and the GitHub flow cost ~130 ms to import: only the two commands here
# need them, so they are imported inside the functions, not when `somas` starts.


def register(sub: Subparsers) -> None:
    """`somas handle-event` and `somas setup-labels`."""
    p = sub.add_parser(
        "handle-event",
        help="run the command a GitHub event asks for ($GITHUB_EVENT_NAME, $GITHUB_EVENT_PATH)",
    )
    p.set_defaults(func=lambda a: handle_event(a.repo, os.environ))
    p = sub.add_parser(
        "authorize-event",
        help="may the event's author do what it asks? (read-only; sets the `verdict` output)",
    )
    p.set_defaults(func=lambda a: authorize_event(a.repo, os.environ))
    p = sub.add_parser(
        "answer-event",
        help="answer a refused `/somas` comment (never runs a command)",
    )
    p.set_defaults(func=lambda a: handle_event(a.repo, os.environ, answer_only=True))
    p = sub.add_parser("setup-labels", help="create or fix the somas:* labels in the repository")
    p.set_defaults(func=lambda a: setup_labels(a.repo, os.environ))


def read_event(env: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """The event name and payload GitHub Actions provides; one-line errors naming the variable."""
    name = env.get("GITHUB_EVENT_NAME", "")
    if not name:
        raise ConfigError("GITHUB_EVENT_NAME: not set; `somas handle-event` runs inside Actions")
    path_text = env.get("GITHUB_EVENT_PATH", "")
    if not path_text:
        raise ConfigError("GITHUB_EVENT_PATH: not set; it names the event payload file")
    path = Path(path_text)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: event payload not found (GITHUB_EVENT_PATH)") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: event payload is not JSON ({json_problem(exc)})") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: event payload must be a JSON object")
    return name, payload


def authorize_git(repo: Path, settings: GitHubSettings) -> None:
    """Let this process's git push the state and project branches with the workflow token.

    The workflows check out with `persist-credentials: false`, so no token is left in
    `.git/config` for other steps; this header lives only in our environment, the way
    actions/checkout would set it, and only when the checkout did not persist one already.
    """
    key = f"http.{settings.server_url.rstrip('/')}/.extraheader"
    existing = subprocess.run(
        ["git", "-C", str(repo), "config", "--get-all", key], capture_output=True, text=True
    )
    if existing.stdout.strip():
        return
    basic = base64.b64encode(f"x-access-token:{settings.token}".encode()).decode()
    actions_runtime.mask(basic)
    count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    os.environ.update(
        {
            "GIT_CONFIG_COUNT": str(count + 1),
            f"GIT_CONFIG_KEY_{count}": key,
            f"GIT_CONFIG_VALUE_{count}": f"AUTHORIZATION: basic {basic}",
        }
    )


def state_snapshot(repo: Path, target: Path, env: Mapping[str, str] | None = None) -> Path:
    """The state branch's projects extracted under `target` (returned), for read-only views."""
    from somas_action.config.loader import load_config
    from somas_action.core.clock import SystemClock
    from somas_action.github.api import GitHubSettings
    from somas_action.state.state_branch import StateBranch

    env = os.environ if env is None else env
    config = load_config(repo, env)
    if env.get("GITHUB_ACTIONS") == "true":
        authorize_git(repo, GitHubSettings.from_env(env, config.github))
    StateBranch(repo, SystemClock(), config.state).snapshot(target)
    return target


def event_outcome(repo: Path, env: Mapping[str, str]) -> tuple[Outcome, dict[str, Any], Config]:
    """What the event asks for (a bad payload is a one-line error), its payload and the config."""
    from somas_action.config.loader import load_config
    from somas_action.core.triggers import PayloadError, from_event

    name, payload = read_event(env)
    config = load_config(repo, env)
    try:
        outcome = from_event(
            name,
            payload,
            bot_logins=config.github.bot_logins,
            run_id=env.get("GITHUB_RUN_ID", ""),
        )
    except PayloadError as exc:
        raise ConfigError(f"{env['GITHUB_EVENT_PATH']}: {exc}") from None
    return outcome, payload, config


def handle_event(
    repo: Path, env: Mapping[str, str], clock: Clock | None = None, *, answer_only: bool = False
) -> int:
    """Turn the event into a command, run it, and say in one line what happened.

    `answer_only` (`somas answer-event`): answer a refused comment and run nothing, for the
    workflow job that runs outside the project's concurrency group.
    """
    from somas_action.app.github_flow import GitHubFlow, default_branch_of
    from somas_action.core.clock import SystemClock
    from somas_action.core.triggers import Ignored, Malformed
    from somas_action.github.api import GitHubSettings

    outcome, payload, config = event_outcome(repo, env)
    if isinstance(outcome, Ignored):
        print(f"somas: nothing to do: {outcome.reason}")
        return 0
    settings = GitHubSettings.from_env(env, config.github)
    if env.get("GITHUB_ACTIONS") == "true" and not answer_only:
        authorize_git(repo, settings)
    flow = GitHubFlow(
        repo,
        settings,
        clock or SystemClock(),
        config=config,
        default_branch=default_branch_of(payload, env),
    )
    if answer_only and not isinstance(outcome, Malformed):
        print(f"somas: {flow.gate.answer_only(outcome)}")
        return 0
    result = (
        flow.refuse_malformed(outcome) if isinstance(outcome, Malformed) else flow.handle(outcome)
    )
    print(f"somas: {result.message}")
    return result.code


def authorize_event(repo: Path, env: Mapping[str, str], clock: Clock | None = None) -> int:
    """The pipeline's first job: decide, with a read-only token, whether the event may run.

    Sets the step outputs `verdict` (`run`: the queued job runs it; `answer`: a comment to
    answer outside the queue; `ignore`: nothing) and `project_id` (for the concurrency group).
    A refused label or dispatch exits 1, so the run shows it.
    """
    from somas_action.app.authorization import Gatekeeper
    from somas_action.core.access import AccessPolicy
    from somas_action.core.clock import SystemClock
    from somas_action.core.triggers import Ignored, Malformed
    from somas_action.github.api import GitHubApi, GitHubSettings
    from somas_action.github.tracker import GitHubTracker

    outcome, _, config = event_outcome(repo, env)
    if isinstance(outcome, Ignored | Malformed):
        verdict = "ignore" if isinstance(outcome, Ignored) else "answer"
        return _verdict(verdict, "", outcome.reason, 0)
    clock = clock or SystemClock()
    settings = GitHubSettings.from_env(env, config.github)
    # No breaker guard: this job keeps nothing, and its one request is the whole decision.
    tracker = GitHubTracker(GitHubApi(settings, clock))
    security = config.security
    policy = AccessPolicy.from_settings(security.allowed_roles, security.outsider_reaction)
    decision = Gatekeeper(tracker, policy).check(outcome)
    if decision.allowed:
        return _verdict("run", outcome.project_id, f"{outcome.verb}: {decision.reason}", 0)
    if outcome.comment_id is not None:
        return _verdict("answer", "", f"refused: {decision.reason}", 0)
    return _verdict("refuse", "", f"refused: {decision.reason}", 1)


def _verdict(verdict: str, project_id: str, why: str, code: int) -> int:
    actions_runtime.set_outputs({"verdict": verdict, "project_id": project_id})
    print(f"somas: {verdict}: {why}")
    return code


def setup_labels(repo: Path, env: Mapping[str, str], clock: Clock | None = None) -> int:
    """Create missing `somas:*` labels and fix drifted colours/descriptions; idempotent."""
    from somas_action.config.loader import load_config
    from somas_action.core.clock import SystemClock
    from somas_action.core.labels import label_specs
    from somas_action.github.api import GitHubApi, GitHubSettings
    from somas_action.github.breaker_guard import github_guard
    from somas_action.github.tracker import GitHubTracker

    config = load_config(repo)
    settings = GitHubSettings.from_env(env, config.github)
    clock = clock or SystemClock()
    tracker = GitHubTracker(GitHubApi(settings, clock, github_guard(repo, config, clock)))
    created, updated = tracker.ensure_labels(label_specs(config.stage_names))
    for label in created:
        print(f"created {label}")
    for label in updated:
        print(f"updated {label}")
    if not created and not updated:
        print(f"{settings.repository}: every somas label is in place")
    return 0
