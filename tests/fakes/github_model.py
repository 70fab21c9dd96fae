"""The fake GitHub's answers: the objects GitHub returns and the operations SOMAS uses.

Answers are built from the OpenAPI description's own examples, corrected where those examples
break the description (the contract check would otherwise fail the fake, not SOMAS).
"""

from __future__ import annotations

import copy
import itertools
import re
import urllib.parse
from typing import Any

from tests.fakes.github_graphql import Forbidden, NotFound, issue_node_id, label_node_id, labelable
from tests.fakes.openapi import Contract

BOT = {"login": "github-actions[bot]", "type": "Bot"}
# The repository id in the new home of a transferred issue (`/repositories/{id}/issues/{n}`).
MOVED_REPOSITORY_ID = 424242
_EPOCH = "2026-01-01T09:00:00Z"


class _Reply(Exception):
    def __init__(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        modelled: bool = False,
    ):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}
        # GitHub answers this outside its OpenAPI description (a deleted or moved issue), so
        # the answer is not checked against it, like an injected fault.
        self.modelled = modelled


class GitHubModel:
    """State of one repository and the REST operations over it (no HTTP here)."""

    owner: str
    repo: str
    contract: Contract
    issues: dict[int, dict[str, Any]]
    repo_labels: dict[str, dict[str, Any]]
    comments: dict[int, dict[str, Any]]
    reactions: dict[int, list[tuple[str, str]]]
    pulls: dict[int, dict[str, Any]]
    permissions: dict[str, str]
    custom_roles: dict[str, str]
    runs: dict[int, dict[str, Any]]
    dispatches: list[dict[str, Any]]
    _ids: itertools.count[int]

    @property
    def api_url(self) -> str:
        """The API root (the server supplies it)."""
        raise NotImplementedError

    @property
    def repository(self) -> str:
        """owner/name."""
        return f"{self.owner}/{self.repo}"

    def issue_comments(self, number: int) -> list[dict[str, Any]]:
        """The issue's comments, oldest first."""
        return [c for c in self.comments.values() if c["issue"] == number]

    # -- objects as GitHub answers them (examples from the description, corrected) -------------

    def _url(self, path: str) -> str:
        return f"{self.api_url}/repos/{self.repository}{path}"

    def _user(self, user: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.contract.example(
            "GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}", "200"
        )["user"]
        body.update(login=user["login"], type=user["type"])
        return body

    def _repo_label(
        self, name: str, color: str = "ededed", description: str = ""
    ) -> dict[str, Any]:
        if name not in self.repo_labels:
            label_id = next(self._ids)
            self.repo_labels[name] = {
                "id": label_id,
                "node_id": label_node_id(name),
                "url": self._url(f"/labels/{urllib.parse.quote(name, safe='')}"),
                "name": name,
                "color": color,
                "default": False,
                "description": description or None,
            }
        return self.repo_labels[name]

    def _comment(self, comment: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.contract.example(
            "POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "201"
        )
        body.update(
            id=comment["id"],
            node_id=f"IC_{comment['id']}",
            url=self._url(f"/issues/comments/{comment['id']}"),
            html_url=f"https://github.example/{self.repository}/issues/{comment['issue']}",
            issue_url=self._url(f"/issues/{comment['issue']}"),
            body=comment["body"],
            user=self._user(comment["user"]),
            created_at=_EPOCH,
            updated_at=_EPOCH,
        )
        return body

    def _issue(self, issue: dict[str, Any]) -> dict[str, Any]:
        body = self._comment_free_issue()
        number = issue["number"]
        body.update(
            id=number,
            node_id=issue_node_id(number),
            number=number,
            title=issue["title"],
            body=issue["body"],
            state=issue["state"],
            labels=[self._repo_label(name) for name in issue["labels"]],
            user=self._user(issue["user"]),
            url=self._url(f"/issues/{number}"),
            repository_url=self._url(""),
            html_url=f"https://github.example/{self.repository}/issues/{number}",
            comments=len(self.issue_comments(number)),
        )
        return body

    def _comment_free_issue(self) -> dict[str, Any]:
        # The description's issue example lacks required fields; fill them as GitHub would.
        body: dict[str, Any] = self.contract.example(
            "GET", "/repos/{owner}/{repo}/issues/{issue_number}", "200"
        )
        for key in ("assignee", "closed_at", "milestone", "closed_by", "pull_request"):
            body.setdefault(key, None)
        body.pop("pull_request", None)
        body.setdefault("comments", 0)
        for key in ("comments_url", "events_url", "labels_url", "repository_url"):
            body.setdefault(key, self._url(f"/issues/1/{key.split('_')[0]}"))
        body.setdefault("assignees", [])
        body.setdefault("created_at", _EPOCH)
        body.setdefault("updated_at", _EPOCH)
        body.setdefault("node_id", "I_1")
        body.setdefault("locked", False)
        body.setdefault("author_association", "OWNER")
        return body

    def _pull(self, pull: dict[str, Any], simple: bool = False) -> dict[str, Any]:
        if simple:
            body: dict[str, Any] = self.contract.example(
                "GET", "/repos/{owner}/{repo}/pulls", "200"
            )[0]
        else:
            body = self.contract.example("POST", "/repos/{owner}/{repo}/pulls", "201")
        number = pull["number"]
        body.update(
            id=number + 5000,
            number=number,
            title=pull["title"],
            body=pull["body"],
            state=pull["state"],
            url=self._url(f"/pulls/{number}"),
            html_url=f"https://github.example/{self.repository}/pull/{number}",
            requested_teams=[],
            requested_reviewers=[],
        )
        for side in ("head", "base"):
            body[side]["ref"] = pull[side]
            body[side]["label"] = f"{self.owner}:{pull[side]}"
            body[side]["repo"] = self._repository(body[side]["repo"])
        return body

    def _repository(self, repo: dict[str, Any]) -> dict[str, Any]:
        # The examples carry fields of the full repository object; a pull's repos are not full.
        for key in (
            "template_repository",
            "subscribers_count",
            "network_count",
            "organization",
            "parent",
            "source",
            "code_of_conduct",
            "security_and_analysis",
        ):
            repo.pop(key, None)
        return repo

    # -- deleted and transferred issues ---------------------------------------------------------

    def delete_issue(self, number: int) -> None:
        """Delete an issue: it answers 410 Gone, and its comments 404."""
        self.issues[number]["gone"] = "deleted"

    def transfer_issue(self, number: int, to: str, new_number: int) -> None:
        """Transfer an issue to repository `to`: everything about it answers 301 to its new home
        (`/repositories/{id}/…`), where this token may read but not write."""
        self.issues[number].update(gone="transferred", moved_to=(to, new_number))

    def _gone_answer(self, path: str) -> _Reply | None:
        number = self._issue_of_path(path)
        issue = self.issues.get(number) if number is not None else None
        if issue is None or "gone" not in issue:
            return None
        if issue["gone"] == "deleted":
            if path.startswith("/issues/comments/"):
                return _Reply(
                    404, {"message": "Not Found", "documentation_url": "x"}, modelled=True
                )
            return _Reply(
                410, {"message": "This issue was deleted", "documentation_url": "x"}, modelled=True
            )
        moved = f"{self.api_url}/repositories/{MOVED_REPOSITORY_ID}{path}"
        if not path.startswith("/issues/comments/"):
            moved = moved.replace(f"/issues/{number}", f"/issues/{issue['moved_to'][1]}", 1)
        body = {"message": "Moved Permanently", "url": moved, "documentation_url": "x"}
        return _Reply(301, body, {"Location": moved}, modelled=True)

    def _issue_of_path(self, path: str) -> int | None:
        match = re.fullmatch(r"/issues/(\d+)(/.*)?", path)
        if match and not path.startswith("/issues/comments/"):
            return int(match.group(1))
        match = re.fullmatch(r"/issues/comments/(\d+)(/.*)?", path)
        comment = self.comments.get(int(match.group(1))) if match else None
        return int(comment["issue"]) if comment else None

    def answer_moved(self, method: str, path: str) -> _Reply:
        """A request to a moved issue's new home (`path` below /repositories/{id})."""
        for number, issue in self.issues.items():
            to, new_number = issue.get("moved_to") or ("", 0)
            if path == f"/issues/{new_number}" and method == "GET":
                body = self._issue(issue)
                body.update(
                    number=new_number,
                    repository_url=f"{self.api_url}/repos/{to}",
                    html_url=f"https://github.example/{to}/issues/{new_number}",
                )
                return _Reply(200, body, modelled=True)
            if path == f"/issues/{new_number}/comments" and method == "GET":
                items = [self._comment(c) for c in self.issue_comments(number)]
                return _Reply(200, items, modelled=True)
        forbidden = {"message": "Resource not accessible by integration", "documentation_url": "x"}
        return _Reply(403, forbidden, modelled=True)

    # -- GraphQL: the label mutations of an issue ------------------------------------------------

    def addLabelsToLabelable(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        """`addLabelsToLabelable`: the labels (by global id) join the issue's."""
        issue = self._by_node_id(input["labelableId"])
        for label_id in input["labelIds"]:
            name = self._label_named(label_id)
            if name not in issue["labels"]:
                issue["labels"].append(name)
        return {"clientMutationId": None, "labelable": labelable(issue, self._repo_label)}

    def removeLabelsFromLabelable(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        """`removeLabelsFromLabelable`: the labels (by global id) leave the issue."""
        issue = self._by_node_id(input["labelableId"])
        gone = {self._label_named(label_id) for label_id in input["labelIds"]}
        issue["labels"] = [name for name in issue["labels"] if name not in gone]
        return {"clientMutationId": None, "labelable": labelable(issue, self._repo_label)}

    def _by_node_id(self, node_id: str) -> dict[str, Any]:
        for number, issue in self.issues.items():
            if issue_node_id(number) == node_id:
                if issue.get("gone") == "deleted":
                    break
                if issue.get("gone") == "transferred":
                    raise Forbidden("Resource not accessible by integration")
                return issue
        raise NotFound(f"Could not resolve to a node with the global id of '{node_id}'")

    def _label_named(self, node_id: str) -> str:
        for name in self.repo_labels:
            if label_node_id(name) == node_id:
                return name
        raise NotFound(f"Could not resolve to a node with the global id of '{node_id}'")

    # -- the API ---------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> _Reply:
        """Route one request below /repos/{owner}/{repo} and return the answer."""
        gone = self._gone_answer(path)
        if gone is not None:
            return gone
        routes = (
            ("GET", r"/issues", self._list_issues),
            ("POST", r"/issues", self._create_issue),
            ("PATCH", r"/issues/(\d+)", self._edit_issue),
            ("GET", r"/issues/(\d+)", self._get_issue),
            ("POST", r"/issues/(\d+)/labels", self._add_labels),
            ("DELETE", r"/issues/(\d+)/labels/([^/]+)", self._remove_label),
            ("GET", r"/issues/(\d+)/comments", self._list_comments),
            ("POST", r"/issues/(\d+)/comments", self._create_comment),
            ("PATCH", r"/issues/comments/(\d+)", self._edit_comment),
            ("POST", r"/issues/comments/(\d+)/reactions", self._react),
            ("GET", r"/collaborators/([^/]+)/permission", self._permission),
            ("GET", r"/pulls", self._list_pulls),
            ("POST", r"/pulls", self._create_pull),
            ("PATCH", r"/pulls/(\d+)", self._edit_pull),
            ("GET", r"/labels", self._list_labels),
            ("POST", r"/labels", self._create_label),
            ("PATCH", r"/labels/([^/]+)", self._edit_label),
            ("GET", r"/actions/runs", self._list_runs),
            ("POST", r"/actions/runs/(\d+)/cancel", self._cancel_run),
            ("POST", r"/actions/workflows/([^/]+)/dispatches", self._dispatch),
        )
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                args = [urllib.parse.unquote(g) for g in match.groups()]
                return handler(query, body, *args)
        return _Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com"})

    def _issue_or_404(self, number: str) -> dict[str, Any]:
        issue = self.issues.get(int(number))
        if issue is None:
            raise _Reply(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com"}
            )
        return issue

    def _commentable_or_404(self, number: str) -> None:
        """An issue or a pull request: to the comments API, a pull request is an issue."""
        if int(number) not in self.pulls:
            self._issue_or_404(number)

    def _get_issue(self, query: Any, body: Any, number: str) -> _Reply:
        return _Reply(200, self._issue(self._issue_or_404(number)))

    def _list_issues(self, query: dict[str, list[str]], body: Any) -> _Reply:
        state = query.get("state", ["open"])[0]
        wanted = set(query.get("labels", [""])[0].split(",")) - {""}
        items = [
            self._issue(issue)
            for _, issue in sorted(self.issues.items())
            if (state == "all" or issue["state"] == state) and wanted <= set(issue["labels"])
        ]
        return self._page("/issues", items, query)

    def _create_issue(self, query: Any, body: dict[str, Any]) -> _Reply:
        number = max(self.issues, default=0) + 1
        for name in body.get("labels") or []:
            self._repo_label(name if isinstance(name, str) else name["name"])
        self.issues[number] = {
            "number": number,
            "title": body["title"],
            "body": body.get("body") or "",
            "labels": [n if isinstance(n, str) else n["name"] for n in body.get("labels") or []],
            "user": BOT,
            "state": "open",
        }
        return _Reply(201, self._issue(self.issues[number]))

    def _edit_issue(self, query: Any, body: dict[str, Any], number: str) -> _Reply:
        issue = self._issue_or_404(number)
        for key in ("title", "body", "state"):
            if key in body:
                issue[key] = body[key]
        return _Reply(200, self._issue(issue))

    def _labels_of(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        return [self._repo_label(name) for name in issue["labels"]]

    def _add_labels(self, query: Any, body: Any, number: str) -> _Reply:
        issue = self._issue_or_404(number)
        names = body["labels"] if isinstance(body, dict) else body
        for name in names:
            name = name if isinstance(name, str) else name["name"]
            if name not in issue["labels"]:
                issue["labels"].append(name)
        return _Reply(200, self._labels_of(issue))

    def _remove_label(self, query: Any, body: Any, number: str, name: str) -> _Reply:
        issue = self._issue_or_404(number)
        if name not in issue["labels"]:
            raise _Reply(404, {"message": "Label does not exist", "documentation_url": "x"})
        issue["labels"].remove(name)
        return _Reply(200, self._labels_of(issue))

    def _list_comments(self, query: dict[str, list[str]], body: Any, number: str) -> _Reply:
        self._commentable_or_404(number)
        items = [self._comment(c) for c in self.issue_comments(int(number))]
        return self._page(f"/issues/{number}/comments", items, query)

    def _page(self, path: str, items: list[Any], query: dict[str, list[str]]) -> _Reply:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        last = max((len(items) + per_page - 1) // per_page, 1)
        if page < last:
            base = self._url(path)
            headers["Link"] = (
                f'<{base}?per_page={per_page}&page={page + 1}>; rel="next", '
                f'<{base}?per_page={per_page}&page={last}>; rel="last"'
            )
        return _Reply(200, chunk, headers)

    def _create_comment(self, query: Any, body: dict[str, Any], number: str) -> _Reply:
        self._commentable_or_404(number)
        comment_id = next(self._ids)
        comment = {"id": comment_id, "issue": int(number), "body": body["body"], "user": BOT}
        self.comments[comment_id] = comment
        return _Reply(201, self._comment(comment))

    def _edit_comment(self, query: Any, body: dict[str, Any], comment_id: str) -> _Reply:
        comment = self.comments.get(int(comment_id))
        if comment is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": "x"})
        comment["body"] = body["body"]
        return _Reply(200, self._comment(comment))

    def _react(self, query: Any, body: dict[str, Any], comment_id: str) -> _Reply:
        reactions = self.reactions.setdefault(int(comment_id), [])
        entry = (BOT["login"], body["content"])
        status = 200 if entry in reactions else 201
        if status == 201:
            reactions.append(entry)
        answer = self.contract.example(
            "POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", "201"
        )
        answer.update(content=body["content"], user=self._user(BOT))
        return _Reply(status, answer)

    def _permission(self, query: Any, body: Any, login: str) -> _Reply:
        role = self.permissions.get(login)
        if role is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": "x"})
        answer = self.contract.example(
            "GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", "200"
        )
        # As GitHub answers: `role_name` is the role itself (custom roles too), `permission`
        # the legacy base role, with maintain read as write and triage as read.
        base = self.custom_roles.get(role, role)
        legacy = {"maintain": "write", "triage": "read"}.get(base, base)
        answer.update(permission=legacy, role_name=role)
        answer["user"].update(login=login, role_name=role)
        return _Reply(200, answer)

    def _list_pulls(self, query: dict[str, list[str]], body: Any) -> _Reply:
        head = query.get("head", [""])[0]
        state = query.get("state", ["open"])[0]
        found = [
            self._pull(p, simple=True)
            for p in self.pulls.values()
            if (not head or f"{self.owner}:{p['head']}" == head)
            and (state == "all" or p["state"] == state)
        ]
        return _Reply(200, found)

    def _create_pull(self, query: Any, body: dict[str, Any]) -> _Reply:
        if any(p["head"] == body["head"] and p["state"] == "open" for p in self.pulls.values()):
            raise _Reply(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": "https://docs.github.com",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {body['head']}.",
                        }
                    ],
                },
            )
        number = max([*self.issues, *self.pulls, 0]) + 1
        pull = {
            "number": number,
            "state": "open",
            "head": body["head"],
            "base": body["base"],
            "title": body.get("title", ""),
            "body": body.get("body", ""),
        }
        self.pulls[number] = pull
        return _Reply(201, self._pull(pull))

    def _edit_pull(self, query: Any, body: dict[str, Any], number: str) -> _Reply:
        pull = self.pulls.get(int(number))
        if pull is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": "x"})
        pull.update({k: v for k, v in body.items() if k in ("title", "body", "state")})
        return _Reply(200, self._pull(pull))

    def _list_labels(self, query: dict[str, list[str]], body: Any) -> _Reply:
        return self._page("/labels", list(self.repo_labels.values()), query)

    def _create_label(self, query: Any, body: dict[str, Any]) -> _Reply:
        if body["name"] in self.repo_labels:
            raise _Reply(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": "x",
                    "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}],
                },
            )
        label = self._repo_label(
            body["name"], body.get("color", "ededed"), body.get("description", "")
        )
        return _Reply(201, label)

    def _edit_label(self, query: Any, body: dict[str, Any], name: str) -> _Reply:
        label = self.repo_labels.get(name)
        if label is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": "x"})
        label.update({k: v for k, v in body.items() if k in ("color", "description")})
        return _Reply(200, label)

    def _list_runs(self, query: dict[str, list[str]], body: Any) -> _Reply:
        template = self.contract.example("GET", "/repos/{owner}/{repo}/actions/runs", "200")
        run_template = template["workflow_runs"][0]
        status = query.get("status", [None])[0]
        runs = []
        for run in self.runs.values():
            if status and run["status"] != status:
                continue
            item = copy.deepcopy(run_template)
            item.update(
                id=run["id"],
                name=run["name"],
                status=run["status"],
                html_url=f"https://github.example/{self.repository}/actions/runs/{run['id']}",
            )
            runs.append(item)
        return _Reply(200, {"total_count": len(runs), "workflow_runs": runs})

    def _cancel_run(self, query: Any, body: Any, run_id: str) -> _Reply:
        run = self.runs.get(int(run_id))
        if run is None or run["status"] == "completed":
            raise _Reply(
                409,
                {
                    "message": "Cannot cancel a workflow run that is completed.",
                    "documentation_url": "x",
                },
            )
        run["status"] = "completed"
        return _Reply(202, {})

    def _dispatch(self, query: Any, body: dict[str, Any], workflow: str) -> _Reply:
        self.dispatches.append({"workflow": workflow, **body})
        return _Reply(204)
