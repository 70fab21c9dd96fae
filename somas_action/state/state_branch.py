"""Project state committed to a git branch (default `somas/state`), one commit per batch.

The branch holds every project's `.somas/projects/<id>/` folder. Commits are built with git
plumbing (a temporary index, `commit-tree`, a push of the commit id), so the user's checkout,
index and current branch are never touched. Only the project's own folder in the working tree
is rewritten when `pull` materializes it from the branch.

Races: runs for *different* projects touch disjoint folders, so a push that loses a race is
rebuilt on the new tip and pushed again: at once the first time, then after a random wait
(jittered exponential backoff, so runs racing in step fall out of step), until
`push_deadline_seconds` have passed. Time bounds it, not a count of lost races: under
load every run gets through, none gives up after N losses. A run that finds *its own* project
changed on the branch raises `StateConflict`: the caller reloads and re-applies its command.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

from somas_action.core import names
from somas_action.core.clock import Clock
from somas_action.core.domain import Event, State
from somas_action.core.errors import StateConflict, WorkspaceError
from somas_action.core.events import EventType
from somas_action.core.names import validate_project_id
from somas_action.core.settings import StateBranchSettings
from somas_action.state.git import GitWorkspace, scratch_index
from somas_action.state.store import projects_dir

# Events that only detail a batch another event of it already names.
_QUIET = frozenset(
    {
        EventType.AGENT_INVOKED,
        EventType.AGENT_OUTPUT_ACCEPTED,
        EventType.ARTIFACTS_WRITTEN,
        EventType.QUALITY_GATES_EVALUATED,
        EventType.CHECKPOINT_CREATED,
        EventType.DEAD_LETTER_RECORDED,
        EventType.NOTIFICATION_OWED,
    }
)
# git's well-known empty tree: a project folder that a batch emptied.
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_LOST_RACE = ("non-fast-forward", "fetch first", "rejected", "cannot lock ref", "failed to lock")


__all__ = ["StateBranch", "StateConflict", "describe_batch", "project_path"]


def project_path(project_id: str) -> str:
    """The project folder's path inside the repository (and the state branch)."""
    return f"{names.SOMAS_DIR}/{names.PROJECTS_DIR}/{validate_project_id(project_id)}"


class StateBranch:
    """Fetch, materialize, commit and push project folders on one branch."""

    def __init__(
        self,
        repo: Path,
        clock: Clock,
        settings: StateBranchSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.repo = repo
        self.git = GitWorkspace(repo)
        self.clock = clock
        self.branch = settings.branch
        self.remote = settings.remote
        self.push_enabled = settings.push
        self.deadline_seconds = settings.push_deadline_seconds
        self.backoff = settings.push_backoff
        self.rng = rng or random.Random()
        self._base: str | None = None  # the branch tip this run builds on
        self._local: str | None = None  # that tip plus this run's unpushed commits
        self._pending: list[tuple[str, str, str | None]] = []  # (project, message, tree)
        self._trees: dict[str, str | None] = {}  # each project's folder tree at `_base`
        self.pushes = 0
        self.lost_races = 0

    @property
    def _tracking(self) -> str:
        return f"refs/remotes/{self.remote}/{self.branch}"

    # -- reading -------------------------------------------------------------------------------

    def _fetch(self) -> str | None:
        """Update the remote-tracking ref; the tip, or None if the branch does not exist yet."""
        if not self.push_enabled:
            return self.git.rev(f"refs/heads/{self.branch}")
        try:
            self.git.git("fetch", "-q", self.remote, f"+refs/heads/{self.branch}:{self._tracking}")
        except WorkspaceError as exc:
            if "couldn't find remote ref" in str(exc).lower():
                return None  # created by our first push
            raise
        return self.git.rev(self._tracking)

    def _tree_of(self, commit: str | None, project_id: str) -> str | None:
        return None if commit is None else self._tree_of_path(commit, project_path(project_id))

    def pull(self, project_id: str) -> bool:
        """Make the working tree's project folder what the branch holds; False if not there.

        A folder the branch does not know is left alone (a project opened before the state
        branch was used is published by its next commit).
        """
        tip = self._fetch()
        self._base = self._local = tip
        self._pending = []
        tree = self._tree_of(tip, project_id)
        self._trees[project_id] = tree
        if tree is None:
            return False
        folder = projects_dir(self.repo) / project_id
        archive = subprocess.run(
            [
                "git",
                "-C",
                str(self.repo),
                "archive",
                "--format=tar",
                tip or "",
                project_path(project_id),
            ],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise WorkspaceError(f"git archive of {self.branch} failed: {archive.stderr.decode()}")
        if folder.exists():
            shutil.rmtree(folder)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(self.repo, filter="data")
        return True

    def snapshot(self, target: Path) -> list[str]:
        """Every project folder the branch holds, extracted under `target` (not the checkout).

        `target/.somas/projects/<id>/` mirrors the branch tip, so read-only views (the monitor)
        see the state every run sees, whatever the checkout holds. An absent branch (no project
        yet) is an empty snapshot.
        """
        tip = self._fetch()
        root = f"{names.SOMAS_DIR}/{names.PROJECTS_DIR}"
        if tip is None or self._tree_of_path(tip, root) is None:
            return []
        archive = subprocess.run(
            ["git", "-C", str(self.repo), "archive", "--format=tar", tip, root],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise WorkspaceError(f"git archive of {self.branch} failed: {archive.stderr.decode()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(target, filter="data")
        return sorted(p.name for p in projects_dir(target).iterdir() if p.is_dir())

    def _tree_of_path(self, commit: str, path: str) -> str | None:
        try:
            return self.git.git("rev-parse", "-q", "--verify", f"{commit}:{path}")
        except WorkspaceError:
            return None

    def fetch_branch(self, branch: str) -> None:
        """Bring a project branch from the remote into the local branch of the same name."""
        if not self.push_enabled:
            return
        try:
            self.git.git("fetch", "-q", self.remote, f"+refs/heads/{branch}:refs/heads/{branch}")
        except WorkspaceError as exc:
            if "couldn't find remote ref" not in str(exc).lower():
                raise

    def push_branch(self, branch: str) -> None:
        """Publish a project branch (the implementation's code) so a pull request can use it."""
        if self.push_enabled:
            self.git.git("push", "-q", self.remote, f"refs/heads/{branch}:refs/heads/{branch}")

    # -- writing -------------------------------------------------------------------------------

    def _build(
        self, base: str | None, project_id: str, message: str, tree: str | None = None
    ) -> tuple[str, str | None] | None:
        """(commit, project tree): `base` with the project folder replaced by `tree`, or by the
        working tree's folder; None when that changes nothing."""
        path = project_path(project_id)
        with scratch_index(self.git, base, "somas-state-index-") as env:
            self.git.git(
                "rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", path, env=env
            )
            if tree is not None:
                self.git.git("read-tree", f"--prefix={path}/", tree, env=env)
            elif (self.repo / path).is_dir():
                # -f: .somas/projects/ is usually ignored on the default branch.
                self.git.git("add", "-f", "--", path, env=env)
            root = self.git.git("write-tree", env=env)
            if base and root == self.git.git("rev-parse", f"{base}^{{tree}}"):
                return None
            parents = ["-p", base] if base else []
            commit = self.git.git("commit-tree", root, *parents, "-m", message, env=env)
            return commit, self._tree_of(commit, project_id)

    def commit(self, project_id: str, message: str) -> str | None:
        """Commit the project folder on top of what this run has (pushed by `push`)."""
        if project_id not in self._trees:
            self._trees[project_id] = self._tree_of(self._base, project_id)
        built = self._build(self._local, project_id, message)
        if built is None:
            return None
        commit, tree = built
        self._local = commit
        self._pending.append((project_id, message, tree))
        if not self.push_enabled:
            old = self.git.rev(f"refs/heads/{self.branch}") or "0" * 40
            self.git.git("update-ref", f"refs/heads/{self.branch}", commit, old)
            self._accepted()
        return commit

    def push(self) -> None:
        """Push this run's commits; a lost race replays them on the new tip (see module).

        Raises StateConflict when another run changed one of this run's projects meanwhile.
        """
        if not self._pending or not self.push_enabled:
            return
        started = self.clock.monotonic()
        attempt = 0
        while True:
            attempt += 1
            assert self._local is not None
            if self._push(self._local):
                self.git.git("update-ref", self._tracking, self._local)
                self._accepted()
                return
            self.lost_races += 1
            tip = self._fetch()
            for project_id in {pid for pid, _, _ in self._pending}:
                if self._tree_of(tip, project_id) != self._trees[project_id]:
                    raise StateConflict(
                        f"{project_id}: changed on {self.remote}/{self.branch} by another run; "
                        "reloading and re-applying the command"
                    )
            self._replay_on(tip)
            # Retry at once (the window is a few git calls); later retries spread out with
            # jitter so that runs racing in step fall out of step.
            if attempt > 1:
                self.wait_after_losing(attempt - 1, started)

    def wait_after_losing(self, losses: int, started: float) -> None:
        """A random wait (up to the backoff for `losses`), or give up past the deadline."""
        if self.clock.monotonic() - started > self.deadline_seconds:
            raise WorkspaceError(
                f"{self.remote}/{self.branch}: other runs kept pushing for "
                f"{self.deadline_seconds:.0f}s; run the command again "
                "(state.push_deadline_seconds)"
            )
        self.clock.sleep(self.rng.uniform(0.0, self.backoff.delay(losses)))

    def publish(self, project_id: str, message: str) -> str | None:
        """`commit` then `push`."""
        commit = self.commit(project_id, message)
        self.push()
        return commit

    def _replay_on(self, tip: str | None) -> None:
        """Rebuild this run's pending commits, one by one, on top of `tip`."""
        self._base = self._local = tip
        for project_id, message, tree in self._pending:
            built = self._build(self._local, project_id, message, tree or _EMPTY_TREE)
            if built is not None:
                self._local = built[0]

    def _accepted(self) -> None:
        self._base = self._local
        for project_id, _, tree in self._pending:
            self._trees[project_id] = tree
        self._pending = []
        self.pushes += 1

    def _push(self, commit: str) -> bool:
        result = subprocess.run(
            [
                "git",
                "-C",
                str(self.repo),
                "push",
                "-q",
                "--porcelain",
                self.remote,
                f"{commit}:refs/heads/{self.branch}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return True
        text = (result.stdout + result.stderr).lower()
        if any(sign in text for sign in _LOST_RACE):
            return False
        lines = result.stderr.strip().splitlines()
        raise WorkspaceError(
            f"git push to {self.remote}/{self.branch} failed: {lines[-1] if lines else 'error'}"
        )


def describe_batch(state: State, written: list[Event]) -> str:
    """A commit message for a batch: `somas(project-7): validation failed (attempt 2/3)`."""
    pid = state["project_id"]
    return f"somas({pid}): {_summary(written) or 'state updated'}"


def _summary(written: list[Event]) -> str:
    parts: list[str] = []
    for event in written:
        kind, stage, data = event["event_type"], event["stage"], event["data"]
        attempt = event["attempt"]
        if kind == EventType.PROJECT_CREATED:
            parts.append(f"project created for issue #{data['issue']['number']}")
        elif kind == EventType.STAGE_STARTED:
            parts.append(f"{stage} started (attempt {attempt}/{data['max_attempts']})")
        elif kind == EventType.STAGE_ATTEMPT_FAILED:
            total = attempt + data["attempts_left"]
            parts.append(f"{stage} failed (attempt {attempt}/{total})")
        elif kind == EventType.STAGE_FAILED:
            parts.append(f"{stage} failed for good, dead letter recorded")
        elif kind == EventType.STAGE_COMPLETED:
            parts.append(f"{stage} completed")
        elif kind == EventType.HUMAN_GATE_OPENED:
            parts.append(f"{stage} waiting for approval")
        elif kind == EventType.HUMAN_GATE_APPROVED:
            parts.append(f"{stage} approved by {event['actor']}")
        elif kind == EventType.HUMAN_GATE_REJECTED:
            parts.append(f"{stage} rejected by {event['actor']}, back to {event['to_stage']}")
        elif kind == EventType.PROJECT_COMPLETED:
            parts.append("project completed")
        elif kind == EventType.STATE_EDIT_RECORDED:
            parts.append("hand edit of state.json recorded")
        elif kind not in _QUIET:
            parts.append(kind.replace("_", " ") + (f" ({stage})" if stage else ""))
    # The last thing said is the most significant (a failure after its attempt, a completion).
    if not parts:
        return written[-1]["event_type"].replace("_", " ") if written else ""
    return "; ".join(dict.fromkeys(parts[-2:]))
