"""A stateful fake of GitHub's REST API on 127.0.0.1, strict about the official contract.

It serves the few operations SOMAS uses (issues, labels, comments, reactions, pull requests,
collaborator permission, workflow runs and dispatches) under a GitHub Enterprise style prefix
(`/api/v3`), keeps their state, logs every request, and checks every request it receives and
every answer it gives against GitHub's OpenAPI description (`tests/fakes/openapi.py`); each
departure is kept in `violations`, which every test asserts empty. Answers are built from the
description's own examples, corrected where those examples break the description.

Faults can be injected: a status with headers (403/429 rate limits), a 5xx *after* the
operation took effect, or a slow answer.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.openapi import Contract, contract

PREFIX = "/api/v3"
TOKEN = "ghs_fake-token-for-tests"
BOT = {"login": "github-actions[bot]", "type": "Bot"}
_EPOCH = "2026-01-01T09:00:00Z"


@dataclass
class Fault:
    """An answer to force on the next matching request(s)."""

    method: str
    path: str  # a regular expression over the path below /repos/{owner}/{repo}
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    after: bool = False  # do the operation, then answer with the fault (a lost answer)
    delay: float = 0.0  # seconds to wait before answering (a slow answer)
    times: int = 1


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it, and what it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    injected: bool

    @property
    def is_write(self) -> bool:
        """Everything but GET changes something (or tries to)."""
        return self.method != "GET"


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class FakeGitHub:
    """The fake's state and its HTTP server."""

    def __init__(self, owner: str = "octo-org", repo: str = "octo-repo") -> None:
        self.owner, self.repo = owner, repo
        self.contract: Contract = contract()
        self.lock = threading.RLock()
        self.log: list[Call] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.issues: dict[int, dict[str, Any]] = {}
        self.repo_labels: dict[str, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.reactions: dict[int, list[tuple[str, str]]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.permissions: dict[str, str] = {}
        self.runs: dict[int, dict[str, Any]] = {}
        self.dispatches: list[dict[str, Any]] = []
        self._ids = itertools.count(1001)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle and helpers for tests ------------------------------------------------------

    @property
    def api_url(self) -> str:
        """What SOMAS is given as the API root (GitHub Enterprise style)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"

    @property
    def repository(self) -> str:
        """owner/name."""
        return f"{self.owner}/{self.repo}"

    def start(self) -> FakeGitHub:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def add_issue(self, number: int, title: str, body: str = "", labels: tuple[str, ...] = ()):
        """An open issue (labels created in the repository as needed)."""
        with self.lock:
            for name in labels:
                self._repo_label(name)
            self.issues[number] = {
                "number": number,
                "title": title,
                "body": body,
                "labels": list(labels),
                "user": {"login": "octocat", "type": "User"},
                "state": "open",
            }

    def add_comment(self, number: int, body: str, login: str = "octocat", kind: str = "User"):
        """A comment written by someone (not through the API); returns its id."""
        with self.lock:
            comment_id = next(self._ids)
            self.comments[comment_id] = {
                "id": comment_id,
                "issue": number,
                "body": body,
                "user": {"login": login, "type": kind},
            }
            return comment_id

    def add_run(self, status: str = "in_progress", name: str = "SOMAS pipeline") -> int:
        """A workflow run in the repository."""
        with self.lock:
            run_id = next(self._ids)
            self.runs[run_id] = {"id": run_id, "status": status, "name": name}
            return run_id

    def inject(self, fault: Fault) -> None:
        """Answer the next matching request(s) with this fault."""
        with self.lock:
            self.faults.append(fault)

    def issue_comments(self, number: int) -> list[dict[str, Any]]:
        """The issue's comments, oldest first."""
        return [c for c in self.comments.values() if c["issue"] == number]

    def snapshot(self) -> dict[str, Any]:
        """Everything the fake holds, to compare before and after."""
        with self.lock:
            return copy.deepcopy(
                {
                    "issues": self.issues,
                    "labels": self.repo_labels,
                    "comments": self.comments,
                    "reactions": self.reactions,
                    "pulls": self.pulls,
                    "runs": self.runs,
                    "dispatches": self.dispatches,
                }
            )

    # -- objects as GitHub answers them (examples from the description, corrected) -------------

    def _url(self, path: str) -> str:
        return f"{self.api_url}/repos/{self.repository}{path}"

    def _user(self, user: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.contract.example(
            "GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}", "200"
        )["user"]
        body.update(login=user["login"], type=user["type"])
        return body

    def _repo_label(self, name: str, color: str = "ededed", description: str = "") -> dict:
        if name not in self.repo_labels:
            label_id = next(self._ids)
            self.repo_labels[name] = {
                "id": label_id,
                "node_id": f"LA_{label_id}",
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
            number=number,
            title=issue["title"],
            body=issue["body"],
            state=issue["state"],
            labels=[self._repo_label(name) for name in issue["labels"]],
            user=self._user(issue["user"]),
            url=self._url(f"/issues/{number}"),
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

    # -- the API ---------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> _Reply:
        """Route one request below /repos/{owner}/{repo} and return the answer."""
        routes = (
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
                return handler(query, body, *args)  # type: ignore[operator]
        return _Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com"})

    def _issue_or_404(self, number: str) -> dict[str, Any]:
        issue = self.issues.get(int(number))
        if issue is None:
            raise _Reply(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com"}
            )
        return issue

    def _get_issue(self, query: Any, body: Any, number: str) -> _Reply:
        return _Reply(200, self._issue(self._issue_or_404(number)))

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
        self._issue_or_404(number)
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
        self._issue_or_404(number)
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
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
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


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per answer

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _serve(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            method = self.command
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            full = parsed.path
            if not full.startswith(PREFIX + "/"):
                self._send(404, {"message": "Not Found"})
                return
            api_path = full[len(PREFIX) :]
            auth = self.headers.get("Authorization", "")
            problems = fake.contract.check_request(method, api_path, query, body)
            if auth not in (f"token {TOKEN}", f"Bearer {TOKEN}"):
                with fake.lock:
                    fake.violations += problems
                self._send(401, {"message": "Bad credentials", "documentation_url": "x"})
                return
            base = f"/repos/{fake.owner}/{fake.repo}"
            local = api_path[len(base) :] if api_path.startswith(base) else None
            fault = self._fault(method, local or "")
            if fault is not None and fault.delay:
                time.sleep(fault.delay)  # the fake is slow; the client under test is not sleeping
            with fake.lock:  # state changes one request at a time, as on the real service
                if fault is not None and not fault.after:
                    reply = _Reply(
                        fault.status, fault.body or {"message": "injected fault"}, fault.headers
                    )
                elif local is None:
                    reply = _Reply(404, {"message": "Not Found", "documentation_url": "x"})
                else:
                    try:
                        reply = fake.answer(method, local, query, body)
                    except _Reply as raised:
                        reply = raised
                    if fault is not None and fault.after:
                        reply = _Reply(
                            fault.status, fault.body or {"message": "lost answer"}, fault.headers
                        )
                reply.body = copy.deepcopy(reply.body)
            injected = fault is not None
            if not injected:
                problems += fake.contract.check_response(method, api_path, reply.status, reply.body)
            with fake.lock:
                fake.violations += problems
                fake.log.append(
                    Call(method, local or api_path, query, body, reply.status, injected)
                )
            self._send(reply.status, reply.body, reply.headers)

        def _fault(self, method: str, local: str) -> Fault | None:
            with fake.lock:
                for fault in fake.faults:
                    if fault.method == method and re.fullmatch(fault.path, local):
                        fault.times -= 1
                        if fault.times <= 0:
                            fake.faults.remove(fault)
                        return fault
            return None

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None or status == 204 else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if data:
                self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return Handler
