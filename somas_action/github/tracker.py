"""The Tracker port on GitHub: issues, labels, comments, reactions, pull requests, runs.

It keeps what it has seen of each issue (labels and their global ids, the comments that carry
our markers) for the life of the process, so the mirror after every transition writes what
changed and reads nothing: labels come from the event payload or from the last label write's
answer, comments are listed once per issue per run. Every request goes through `GitHubApi.call`.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from somas_action.core.access import Access
from somas_action.core.domain import JsonObject
from somas_action.core.labels import ALERT, LabelSpec
from somas_action.core.ports import Issue, WorkflowRun
from somas_action.github.api import AmbiguousWrite, GitHubApi, GitHubError, RateLimitDeferred
from somas_action.github.issue_location import about_issue
from somas_action.github.relabel import LabelIds, labels_after, relabel_request

BranchPusher = Callable[[str], None]


def marker_line(marker: str) -> str:
    """The hidden line that identifies a comment we own."""
    return f"<!-- {marker} -->"


def with_marker(body: str, marker: str) -> str:
    """A comment body ending in its marker."""
    return f"{body}\n\n{marker_line(marker)}"


@dataclass
class _Comment:
    id: int
    body: str


class GitHubTracker:
    """Tracker, CommandHost and WorkflowRuns over one repository."""

    def __init__(self, api: GitHubApi, before_pull_request: BranchPusher | None = None) -> None:
        self.api = api
        self.before_pull_request = before_pull_request
        self._issues: dict[int, Issue] = {}
        self._ours: dict[int, dict[str, _Comment]] = {}
        self._pulls: dict[str, tuple[int, str, str, str]] = {}
        self._access: dict[str, Access] = {}
        self._ids = LabelIds()
        self._listed_labels = False

    # -- issues and labels ---------------------------------------------------------------------

    def seed_issue(self, payload: JsonObject) -> Issue:
        """Remember an issue as an event payload shows it (saves a read)."""
        issue = Issue(
            number=int(payload["number"]),
            title=str(payload.get("title") or ""),
            body=str(payload.get("body") or ""),
            labels=tuple(str(label["name"]) for label in payload.get("labels") or ()),
            url=str(payload.get("html_url") or ""),
            state=str(payload.get("state") or "open"),
        )
        self._issues[issue.number] = issue
        if payload.get("node_id"):
            self._ids.issues[issue.number] = str(payload["node_id"])
        self._ids.remember(payload.get("labels") or ())
        return issue

    def get_issue(self, number: int) -> Issue:
        """The issue, from what this process has seen, else one GET (`IssueGone` if it left)."""
        if number not in self._issues:
            with about_issue(self.api, number, existed=False):
                self.seed_issue(self.api.send(f"GET issue #{number}", "GET", f"/issues/{number}"))
        return self._issues[number]

    def _remember_labels(self, number: int, labels: Iterable[JsonObject]) -> None:
        issue = self.get_issue(number)
        labels = list(labels)
        self._ids.remember(labels)
        names = tuple(str(label["name"]) for label in labels)
        self._issues[number] = dataclasses.replace(issue, labels=names)

    def set_labels(self, number: int, add: set[str], remove: set[str]) -> None:
        """One request: only adds, one POST; one label out, one DELETE; both, one GraphQL
        request (see relabel.py). Else one POST and one DELETE per label removed.

        Never a PUT of the whole set: that would drop a label a person added since we last looked
        (GitHub has no conditional label write), and losing someone's label is worse than a call.
        Raises `IssueGone` when the issue was deleted or transferred.
        """
        with about_issue(self.api, number):
            several = (bool(add) and bool(remove)) or len(remove) > 1
            if not (several and self._relabel(number, add, remove)):
                self._set_labels_rest(number, add, remove)

    def _relabel(self, number: int, add: set[str], remove: set[str]) -> bool:
        """Add and remove in one GraphQL request; False when it cannot be (REST then does it)."""
        self.get_issue(number)  # its global id comes with it
        issue_id = self._ids.issues.get(number)
        if self._ids.missing(add | remove) and not self._listed_labels:
            self._listed_labels = True
            self._ids.remember(self._all_labels())
        if issue_id is None or self._ids.missing(add | remove):
            return False  # a label the repository lacks: REST's add creates it
        query, variables = relabel_request(
            issue_id,
            [self._ids.labels[name] for name in sorted(add)],
            [self._ids.labels[name] for name in sorted(remove)],
        )
        try:
            data = self.api.graphql(f"relabel #{number}", query, variables, repeatable=True)
        except RateLimitDeferred:
            raise
        except GitHubError:
            return False  # REST says plainly what is wrong (a deleted or moved issue, rights)
        self._remember_labels(number, labels_after(data))
        return True

    def _set_labels_rest(self, number: int, add: set[str], remove: set[str]) -> None:
        if add:
            labels = self.api.send(
                f"add labels to #{number}",
                "POST",
                f"/issues/{number}/labels",
                {"labels": sorted(add)},
                repeatable=True,  # adding a label twice is the same as once
            )
            self._remember_labels(number, labels)
        for name in sorted(remove):
            quoted = urllib.parse.quote(name, safe="")
            try:
                labels = self.api.send(
                    f"remove label {name!r} from #{number}",
                    "DELETE",
                    f"/issues/{number}/labels/{quoted}",
                )
            except GitHubError as exc:
                if exc.status != 404:  # already gone is what we wanted
                    raise
                current = set(self.get_issue(number).labels) - {name}
                labels = [{"name": label} for label in sorted(current)]
            self._remember_labels(number, labels)

    # -- comments ------------------------------------------------------------------------------

    def _our_comments(self, number: int, refresh: bool = False) -> dict[str, _Comment]:
        """marker -> comment, for the comments on the issue that we wrote (listed once)."""
        if refresh or number not in self._ours:
            pages = self.api.call(
                f"list comments of #{number}",
                "GET",
                lambda: list(self.api.repo.get_issue(number).get_comments()),
            )
            found: dict[str, _Comment] = {}
            for comment in pages:
                marker = self._marker_of(comment.body or "", comment.user)
                if marker and marker not in found:
                    found[marker] = _Comment(comment.id, comment.body)
            self._ours[number] = found
        return self._ours[number]

    def _marker_of(self, body: str, user: Any) -> str | None:
        """The marker of a comment we wrote; a person's comment never counts, whatever it says."""
        login = getattr(user, "login", "") if user is not None else ""
        kind = getattr(user, "type", "") if user is not None else ""
        if kind != "Bot" and login not in self.api.settings.config.bot_logins:
            return None
        last = body.rstrip().rsplit("\n", 1)[-1].strip()
        if last.startswith("<!-- somas:") and last.endswith(" -->"):
            return last[5:-4]
        return None

    def upsert_comment(self, number: int, marker: str, body: str) -> None:
        """Edit our comment carrying `marker` if its text changed, or post it once.

        Raises `IssueGone` when the issue was deleted or transferred.
        """
        with about_issue(self.api, number):
            self._upsert_comment(number, marker, body)

    def _upsert_comment(self, number: int, marker: str, body: str) -> None:
        text = with_marker(body, marker)
        ours = self._our_comments(number)
        existing = ours.get(marker)
        if existing is not None:
            if existing.body != text:
                self.api.send(
                    f"edit comment {existing.id}",
                    "PATCH",
                    f"/issues/comments/{existing.id}",
                    {"body": text},
                )
                existing.body = text
            return
        path = f"/issues/{number}/comments"
        try:
            created = self.api.send(f"comment on #{number}", "POST", path, {"body": text})
        except AmbiguousWrite:
            # The POST may have landed: look before posting again, so it never doubles.
            again = self._our_comments(number, refresh=True).get(marker)
            if again is not None:
                if again.body != text:
                    self._upsert_comment(number, marker, body)
                return
            created = self.api.send(f"comment on #{number} (checked)", "POST", path, {"body": text})
        ours[marker] = _Comment(int(created["id"]), text)

    def reply(self, number: int, marker: str, body: str) -> None:
        """Answer a command on the issue, once per marker."""
        self.upsert_comment(number, marker, body)

    def react(self, comment_id: int, content: str) -> None:
        """React to a comment (GitHub answers 200 for a reaction that already exists)."""
        self.api.send(
            f"react {content} to comment {comment_id}",
            "POST",
            f"/issues/comments/{comment_id}/reactions",
            {"content": content},
            repeatable=True,
        )

    def access(self, login: str) -> Access:
        """The account's role and base permission on the repository, asked once per run.

        Both fields are kept: `permission` folds maintain into write and triage into read, and
        `role_name` names the role itself, custom roles included (see core/access.py).
        """
        if login not in self._access:
            quoted = urllib.parse.quote(login, safe="")
            try:
                data = self.api.send(
                    f"permission of {login}", "GET", f"/collaborators/{quoted}/permission"
                )
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                self._access[login] = Access.none(login)
            else:
                permission = str(data.get("permission") or "none")
                role = str(data.get("role_name") or permission)
                self._access[login] = Access(login, role, permission)
        return self._access[login]

    # -- pull requests -------------------------------------------------------------------------

    def upsert_pull_request(self, head: str, base: str, title: str, body: str) -> str:
        """Push `head`, then open its pull request or update the open one; return its URL."""
        if self.before_pull_request is not None:
            self.before_pull_request(head)
        known = self._pulls.get(head) or self._find_pull(head)
        if known is None:
            try:
                data = self.api.send(
                    f"open pull request for {head}",
                    "POST",
                    "/pulls",
                    {"title": title, "head": head, "base": base, "body": body},
                )
            except GitHubError as exc:
                # 422 "already exists", or an answer lost on the way: look, then update it.
                lost = exc.status == 422 or isinstance(exc, AmbiguousWrite)
                known = self._find_pull(head) if lost else None
                if known is None:
                    raise
            else:
                self._pulls[head] = (int(data["number"]), str(data["html_url"]), title, body)
                return str(data["html_url"])
        number, url, old_title, old_body = known
        if (old_title, old_body) != (title, body):
            self.api.send(
                f"update pull request #{number}",
                "PATCH",
                f"/pulls/{number}",
                {"title": title, "body": body},
            )
        self._pulls[head] = (number, url, title, body)
        return url

    def _find_pull(self, head: str) -> tuple[int, str, str, str] | None:
        pulls = self.api.send(
            f"find pull request for {head}",
            "GET",
            "/pulls",
            state="open",
            head=f"{self.api.settings.owner}:{head}",
        )
        for pull in pulls:
            return (int(pull["number"]), str(pull["html_url"]), pull["title"], pull["body"] or "")
        return None

    def close_pull_request(self, head: str, reason: str) -> str | None:
        """Say on the open pull request of `head` why it is closed, then close it."""
        known = self._pulls.get(head) or self._find_pull(head)
        if known is None:
            return None
        number, url, _, _ = known
        # A pull request is an issue to the comments API; the marker keeps a retry from
        # saying it twice.
        self.upsert_comment(number, f"somas:closed:{head}", reason)
        self.api.send(
            f"close pull request #{number}", "PATCH", f"/pulls/{number}", {"state": "closed"}
        )
        self._pulls.pop(head, None)
        return url

    # -- workflow runs -------------------------------------------------------------------------

    def list_runs(self, status: str) -> list[WorkflowRun]:
        """Workflow runs of the repository with this status (first 100)."""
        data = self.api.send(f"list {status} runs", "GET", "/actions/runs", status=status)
        return [
            WorkflowRun(int(r["id"]), str(r.get("name") or ""), str(r["status"]), r["html_url"])
            for r in data["workflow_runs"]
        ]

    def cancel_run(self, run_id: int) -> bool:
        """Cancel a run; False when GitHub says it can no longer be cancelled (409)."""
        try:
            self.api.send(
                f"cancel run {run_id}",
                "POST",
                f"/actions/runs/{run_id}/cancel",
                repeatable=True,  # cancelling twice is cancelling once
            )
        except GitHubError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def upsert_alert(self, title: str, body: str | None) -> str | None:
        """One open `somas:alert` issue: edited in place while alerts last, closed after."""
        found = self.api.send(
            "list alert issues", "GET", "/issues", state="open", labels=ALERT, per_page=100
        )
        current = [i for i in found if "pull_request" not in i]
        if body is None:
            for issue in current:
                self.api.send(
                    f"close alert #{issue['number']}",
                    "PATCH",
                    f"/issues/{issue['number']}",
                    {"state": "closed"},
                )
            return None
        if current:
            issue = current[0]
            if issue["title"] != title or (issue["body"] or "") != body:
                self.api.send(
                    f"update alert #{issue['number']}",
                    "PATCH",
                    f"/issues/{issue['number']}",
                    {"title": title, "body": body},
                )
            return str(issue["html_url"])
        created = self.api.send(
            "open alert issue", "POST", "/issues", {"title": title, "body": body, "labels": [ALERT]}
        )
        return str(created["html_url"])

    def cancel_in_progress_runs(self) -> list[str]:
        """The runbook's emergency stop: cancel SOMAS workflow runs that are queued or running.

        Other workflows of the repository are left alone, and so is the run doing the cancelling.
        """
        own = os.environ.get("GITHUB_RUN_ID", "")
        cancelled = []
        for status in ("in_progress", "queued"):
            for run in self.list_runs(status):
                if run.name.startswith("SOMAS") and str(run.id) != own and self.cancel_run(run.id):
                    cancelled.append(str(run.id))
        return cancelled

    def dispatch(self, workflow: str, ref: str, inputs: dict[str, str]) -> None:
        """Start a workflow run (never re-sent blindly: two dispatches are two runs)."""
        quoted = urllib.parse.quote(workflow, safe="")
        self.api.send(
            f"dispatch {workflow}",
            "POST",
            f"/actions/workflows/{quoted}/dispatches",
            {"ref": ref, "inputs": inputs},
        )

    # -- the label taxonomy --------------------------------------------------------------------

    def ensure_labels(self, specs: Iterable[LabelSpec]) -> tuple[list[str], list[str]]:
        """Create missing labels and fix colour/description drift; returns (created, updated)."""
        existing = {label["name"]: label for label in self._all_labels()}
        created: list[str] = []
        updated: list[str] = []
        for spec in specs:
            have = existing.get(spec.name)
            wanted = {"color": spec.color, "description": spec.description}
            if have is None:
                try:
                    self.api.send(
                        f"create label {spec.name!r}",
                        "POST",
                        "/labels",
                        {"name": spec.name, **wanted},
                    )
                except AmbiguousWrite:
                    if spec.name not in {label["name"] for label in self._all_labels()}:
                        raise
                created.append(spec.name)
            elif (str(have.get("color", "")).lower(), have.get("description") or "") != (
                spec.color,
                spec.description,
            ):
                quoted = urllib.parse.quote(spec.name, safe="")
                self.api.send(f"update label {spec.name!r}", "PATCH", f"/labels/{quoted}", wanted)
                updated.append(spec.name)
        return created, updated

    def _all_labels(self) -> list[JsonObject]:
        items: list[JsonObject] = []
        page = 1
        while True:
            batch = self.api.send("list labels", "GET", "/labels", per_page=100, page=page)
            items.extend(batch)
            if len(batch) < 100:
                return items
            page += 1
