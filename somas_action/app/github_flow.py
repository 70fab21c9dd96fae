"""Running one GitHub trigger: authorize, sync state from the branch, run, publish, answer.

`GitHubFlow` wires the runner to GitHub: the tracker mirrors state to the issue, every
committed batch is committed to the state branch, the comments it owes the issue are said once
it is pushed (the outbox), and the comment that asked gets a reaction (👀 seen, 🚀 done,
😕 refused) and, when refused, a reply that says why.

The operations toolkit's verbs (restart, retry, resume, pause, unpause, cancel) go through
the same `Operator` as the CLI commands, with the comment as their idempotency key.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from somas_action.app.authorization import Gatekeeper
from somas_action.app.compose import build_runner
from somas_action.app.publishing import Publisher
from somas_action.config.loader import load_config
from somas_action.config.schemas import first_problem
from somas_action.core import names
from somas_action.core.access import AccessPolicy
from somas_action.core.clock import Clock
from somas_action.core.domain import Event, JsonObject, State
from somas_action.core.error_kinds import RUN_DEADLINE
from somas_action.core.errors import CommandRefused, SomasError, StateError, WorkspaceError
from somas_action.core.events import EventType
from somas_action.core.outbox import NoticePolicy
from somas_action.core.report import status_table
from somas_action.core.settings import Config
from somas_action.core.triggers import ADVANCING, Malformed, Trigger
from somas_action.core.untrusted import code_block, code_span
from somas_action.github.api import (
    GitHubApi,
    GitHubError,
    GitHubSettings,
    RateLimitDeferred,
)
from somas_action.github.breaker_guard import github_guard
from somas_action.github.mirror_buffer import MirrorBuffer
from somas_action.github.tracker import GitHubTracker
from somas_action.pipeline.operator import Operator
from somas_action.pipeline.outbox import Outbox
from somas_action.pipeline.recorder import mirror_issue
from somas_action.pipeline.runner import Runner
from somas_action.state.jsonio import json_problem
from somas_action.state.state_branch import StateBranch, StateConflict, describe_batch

SEEN, DONE, REFUSED = "eyes", "rocket", "confused"

# verb -> (Runner method the operations toolkit provides, keyword arguments from the trigger).
# The operations toolkit's verbs, as `/somas` comments: (operator method, arguments).
OPERATOR_VERBS: dict[str, Callable[[Operator, Trigger, State, str | None], State]] = {
    "restart": lambda op, t, s, d: op.restart(
        t.project_id, t.args["stage"], t.actor, f"/somas restart by {t.actor}", delivery_id=d
    ),
    "retry": lambda op, t, s, d: op.restart(
        t.project_id, s["current_stage"], t.actor, f"/somas retry by {t.actor}", delivery_id=d
    ),
    "resume": lambda op, t, s, d: op.resume(
        t.project_id, t.args.get("checkpoint"), t.actor, delivery_id=d
    ),
    "pause": lambda op, t, s, d: op.pause(
        t.project_id, t.actor, f"/somas pause by {t.actor}", delivery_id=d
    ),
    "unpause": lambda op, t, s, d: op.unpause(t.project_id, t.actor, delivery_id=d),
    "cancel": lambda op, t, s, d: op.cancel(
        t.project_id, t.actor, f"/somas cancel by {t.actor}", delivery_id=d
    ),
}
_CONTINUABLE = (names.PENDING, names.IN_PROGRESS)


@dataclass
class Outcome:
    """What a handled trigger came to: exit code and one line for the log."""

    code: int
    message: str


class GitHubFlow:
    """The runner, tracker and state branch of one repository, for one workflow run."""

    def __init__(
        self,
        repo: Path,
        settings: GitHubSettings,
        clock: Clock,
        *,
        config: Config | None = None,
        default_branch: str = names.DEFAULT_BASE_BRANCH,
        out: TextIO | None = None,
        api: GitHubApi | None = None,
    ) -> None:
        self.repo = repo
        self.config = config or load_config(repo)
        self.settings = settings
        self.clock = clock
        self.out = out or sys.stdout
        self.default_branch = default_branch
        self.api = api or GitHubApi(settings, clock, github_guard(repo, self.config, clock))
        self.branch = StateBranch(repo, clock, self.config.state)
        self.tracker = GitHubTracker(self.api, before_pull_request=self.branch.push_branch)
        security = self.config.security
        self.gate = Gatekeeper(
            self.tracker,
            AccessPolicy.from_settings(security.allowed_roles, security.outsider_reaction),
        )
        notifications = self.config.monitoring.notifications
        self.outbox = Outbox(self.tracker, notifications.comment_per_stage, self.say)
        self.buffer = MirrorBuffer(self.tracker, self.say)
        self.runner: Runner = build_runner(
            repo,
            clock=clock,
            tracker=self.buffer,
            after_commit=self._after_commit,
            base_branch=default_branch,
            notices=NoticePolicy(
                notifications.enabled, frozenset(notifications.notify_on), settings.run_url
            ),
        )
        self.publisher = Publisher(
            self.runner, self.outbox, self.buffer, self.branch, clock, self.say
        )

    def say(self, line: str) -> None:
        """One line to the run's log."""
        print(line, file=self.out, flush=True)

    def _after_commit(self, state: State, written: list[Event]) -> None:
        # One commit per batch; pushed before anything slow (an agent call) and at the end,
        # so a stage's closing batch and the next stage's opening batch travel in one push.
        # Nothing is said on the issue before the state that says it is pushed (the outbox).
        self.branch.commit(state["project_id"], describe_batch(state, written))
        if any(event["event_type"] == EventType.STAGE_STARTED for event in written):
            self.branch.push()
            # Show the issue as it is before waiting on the agent.
            self.buffer.flush_after_next_mirror = True
            if self.outbox.one_per_stage:
                self.outbox.deliver(state, stages_only=True)

    # -- refusals ------------------------------------------------------------------------------

    def refuse_malformed(self, bad: Malformed) -> Outcome:
        """Answer a comment that breaks the grammar (an outsider gets one reaction at most)."""
        if bad.issue:
            self.tracker.seed_issue(bad.issue)
        decision = self.gate.check_login(bad.login, "a `/somas` command")
        if decision.access.outsider:
            self.gate.answer(decision, bad.issue_number, bad.comment_id, "")
            return Outcome(0, f"ignored comment {bad.comment_id} by an outsider: {bad.reason}")
        self.tracker.react(bad.comment_id, REFUSED)
        self._reply(
            bad.issue_number, bad.comment_id, bad.login, f"not a valid command: {bad.reason}"
        )
        return Outcome(0, f"refused comment {bad.comment_id}: {bad.reason}")

    def _reply(self, number: int, comment_id: int, login: str, text: str) -> None:
        self.gate.reply(number, comment_id, login, text)

    def _refuse(self, trigger: Trigger, why: str) -> Outcome:
        """Refuse a command that is not possible now; `why` is Markdown already rendered."""
        if trigger.comment_id is not None:
            self.tracker.react(trigger.comment_id, REFUSED)
            self._reply(trigger.issue_number, trigger.comment_id, trigger.login, f"refused: {why}")
        return Outcome(0 if trigger.comment_id is not None else 1, f"refused: {why}")

    def authorize(self, trigger: Trigger) -> Outcome | None:
        """Refuse (and answer as the policy allows) a trigger its author may not give."""
        decision = self.gate.check(trigger)
        if not decision.allowed:
            self.gate.refuse(decision, trigger)
            code = 0 if trigger.comment_id is not None else 1
            return Outcome(code, f"refused: {decision.reason}")
        number = trigger.issue_number
        if trigger.verb == "start" and self.tracker.get_issue(number).state != "open":
            return self._refuse(trigger, f"issue #{number} is closed; reopen it to start SOMAS")
        return None

    # -- running -------------------------------------------------------------------------------

    def handle(self, trigger: Trigger) -> Outcome:
        """Authorize and run one trigger; refusals are answered, never raised."""
        if trigger.issue:
            self.tracker.seed_issue(trigger.issue)
        refused = self.authorize(trigger)
        if refused is not None:
            return refused
        if trigger.comment_id is not None:
            self.tracker.react(trigger.comment_id, SEEN)
        try:
            state, code, note = self._with_state(trigger)
            state = self.publisher.publish(state)
            self.buffer.flush()
            if self.branch.lost_races:
                self.say(
                    f"somas: state branch: {self.branch.pushes} push(es), "
                    f"{self.branch.lost_races} lost race(s) to other runs"
                )
        except RateLimitDeferred as exc:
            self.branch.push()  # git is not rate limited: the state is safe before handing over
            return self._defer(trigger, exc)
        except (CommandRefused, StateError) as exc:
            # What was recorded before the refusal (a hand edit noticed on load) is kept.
            self.branch.push()
            self.buffer.flush()
            return self._refuse(trigger, code_span(str(exc), 500))
        except SomasError as exc:
            self._report_failure(trigger, exc)
            raise
        if _out_of_time(state):
            return self._continue(trigger, "the run's time budget is used up")
        if trigger.comment_id is not None and self.buffer.gone is None:  # nothing to react on
            self.tracker.react(trigger.comment_id, DONE)
            if trigger.verb == "status":
                self._reply(
                    trigger.issue_number,
                    trigger.comment_id,
                    trigger.login,
                    "here is the status:\n\n" + code_block(status_table(state), limit=4000),
                )
        return Outcome(code, note)

    def _report_failure(self, trigger: Trigger, exc: SomasError) -> None:
        """Tell the commenter the command broke off (best effort: GitHub may be the problem)."""
        if trigger.comment_id is None:
            return
        where = f"; see {self.settings.run_url}" if self.settings.run_url else ""
        try:
            self.tracker.react(trigger.comment_id, REFUSED)
            self._reply(
                trigger.issue_number,
                trigger.comment_id,
                trigger.login,
                f"`/somas {trigger.verb}` could not be completed: {code_span(str(exc))}{where}",
            )
        except (SomasError, GitHubError):
            pass

    def _with_state(self, trigger: Trigger) -> tuple[State, int, str]:
        """Run against the branch's state; when another run changed the project first, pull
        and re-apply the command (after a random wait once that happened twice), until the
        state branch's push deadline."""
        started = self.clock.monotonic()
        conflicts = 0
        while True:
            self.branch.pull(trigger.project_id)
            self.branch.fetch_branch(names.project_branch_for(trigger.project_id))
            try:
                result = self._run(trigger)
                self.branch.push()
                return result
            except StateConflict as exc:
                self.buffer.discard()
                self.say(f"somas: {exc}")
                conflicts += 1
                if conflicts > 1:
                    try:
                        self.branch.wait_after_losing(conflicts - 1, started)
                    except WorkspaceError:
                        raise StateError(
                            f"{trigger.project_id}: the state branch kept changing under this "
                            "run; run the command again"
                        ) from None

    def _run(self, trigger: Trigger) -> tuple[State, int, str]:
        runner, pid, actor = self.runner, trigger.project_id, trigger.actor
        delivery = trigger.delivery_id or None
        if trigger.verb == "start":
            state = runner.start(trigger.issue_number, actor, delivery_id=delivery)
        else:
            _, state = runner.load(pid, actor)
            state = self._command(trigger, state)
        if trigger.verb not in ADVANCING or state["status"] not in _CONTINUABLE:
            return state, 0, f"{pid}: {trigger.verb}: {state['status']} at {state['current_stage']}"
        state, stop = runner.advance(pid, actor)
        return state, stop.code, stop.reason

    def _command(self, trigger: Trigger, state: State) -> State:
        runner, pid, actor = self.runner, trigger.project_id, trigger.actor
        delivery = trigger.delivery_id or None
        verb = trigger.verb
        if verb == "approve":
            return runner.approve(pid, actor, delivery_id=delivery)
        if verb == "reject":
            reason = trigger.args.get("reason") or "rejected without a reason"
            return runner.reject(pid, actor, reason, delivery_id=delivery)
        if verb == "status":
            self.mirror(state)
            return state
        if verb == "agent":
            return self._agent(trigger, state)
        if verb == "agent_apply":
            reply = read_agent_reply(self.repo, trigger.project_id, trigger.args)
            return runner.apply_reply(
                pid, trigger.args["agent"], trigger.args["stage"], reply, actor, delivery
            )
        if verb == "resume" and self._is_continuation(trigger, state):
            self.mirror(state)  # a deferred run may have stopped before mirroring
            return state
        return OPERATOR_VERBS[verb](Operator(runner), trigger, state, delivery)

    def _is_continuation(self, trigger: Trigger, state: State) -> bool:
        """Resume at the last checkpoint of a project still running = just carry on."""
        wanted = trigger.args.get("checkpoint")
        last = state["recovery_info"]["last_successful_checkpoint"]
        return state["status"] in _CONTINUABLE and (not wanted or wanted == last)

    def _agent(self, trigger: Trigger, state: State) -> State:
        name = trigger.args["agent"]
        known = sorted(self.runner.agents)
        if name not in known:
            raise CommandRefused(
                f"unknown agent {name!r}; the pipeline's agents: {', '.join(known)}"
            )
        self.tracker.dispatch(
            "somas-agent.yml",
            self.default_branch,
            {
                "project_id": trigger.project_id,
                "agent": name,
                "stage": state["current_stage"],
                "instructions": trigger.args["instructions"],
            },
        )
        return state

    def mirror(self, state: State) -> None:
        """Labels and the status comment from the state (what the runner does after commits)."""
        mirror_issue(self.tracker, state)

    def _defer(self, trigger: Trigger, exc: RateLimitDeferred) -> Outcome:
        """Too long a wait: the state is on the branch already; hand over to a later run."""
        return self._continue(trigger, str(exc))

    def _continue(self, trigger: Trigger, why: str) -> Outcome:
        """Hand the project to a continuation run (bounded hops); its state is pushed already."""
        workflow = self.config.github.continuation_workflow
        hop = int(trigger.args.get("hop", "0")) + 1
        limit = self.config.github.max_continuations
        if hop > limit:
            return Outcome(
                1,
                f"{why}; {limit} continuation runs in a row already, so this one stops here: "
                f"`gh workflow run {workflow} -f project_id={trigger.project_id}` continues it",
            )
        try:
            _, state = self.runner.load(trigger.project_id, trigger.actor)
            checkpoint = state["recovery_info"]["last_successful_checkpoint"] or ""
            self.tracker.dispatch(
                workflow,
                self.default_branch,
                {"project_id": trigger.project_id, "checkpoint_id": checkpoint, "hop": str(hop)},
            )
        except (SomasError, GitHubError) as again:
            return Outcome(
                1,
                f"{why}; the state is saved on {self.branch.branch}, but dispatching {workflow} "
                f"failed too ({again}); run it by hand: gh workflow run {workflow} "
                f"-f project_id={trigger.project_id}",
            )
        return Outcome(
            0,
            f"{why}; state saved on {self.branch.branch}, continuing in {workflow} "
            f"(project_id={trigger.project_id}, checkpoint_id={checkpoint or '-'}, hop {hop})",
        )


AGENT_REPLY_FILE = ".somas-agent-reply/agent-reply.json"


def read_agent_reply(repo: Path, project_id: str, args: Mapping[str, str]) -> JsonObject:
    """The reply somas-agent.yml's read-only job produced, checked before it is applied.

    The file must be ours (schema), and for this very project, agent and stage, so an
    artifact cannot be swapped for another project's; the reply itself is then validated
    against the stage's output schema like any agent reply.
    """
    path = repo / os.environ.get("SOMAS_AGENT_REPLY", AGENT_REPLY_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandRefused(f"{path}: no agent reply; the agent job did not produce one") from None
    except ValueError as exc:
        raise CommandRefused(f"{path}: not JSON ({json_problem(exc)})") from None
    problem = first_problem("agent_reply", data)
    if problem:
        raise CommandRefused(f"{path}: {problem}")
    wanted = {"project_id": project_id, "agent": args["agent"], "stage": args["stage"]}
    got = {key: data[key] for key in wanted}
    if got != wanted:
        raise CommandRefused(f"{path}: the reply is for {got}, this run applies {wanted}")
    reply: JsonObject = data["reply"]
    return reply


def _out_of_time(state: State) -> bool:
    """Parked because the run's time budget ran out (not an outage: that waits for a person
    or the breaker's retry time, and a continuation would only find it parked again)."""
    parked = state["recovery_info"].get("parked")
    return state["status"] == names.PARKED and parked is not None and parked["kind"] == RUN_DEADLINE


def default_branch_of(payload: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The branch pull requests target and dispatches run on: the repository's default."""
    repository = payload.get("repository") or {}
    return str(
        repository.get("default_branch") or env.get("GITHUB_REF_NAME") or names.DEFAULT_BASE_BRANCH
    )
