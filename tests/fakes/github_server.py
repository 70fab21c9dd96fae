"""A stateful fake of GitHub's REST API on 127.0.0.1, strict about the official contract.

It serves the few operations SOMAS uses (issues, labels, comments, reactions, pull requests,
collaborator permission, workflow runs and dispatches) under a GitHub Enterprise style prefix
(`/api/v3`), keeps their state, logs every request, and checks every request it receives and
every answer it gives against GitHub's OpenAPI description (`tests/fakes/openapi.py`); each
departure is kept in `violations`, which every test asserts empty. Answers are built from the
description's own examples, corrected where those examples break the description.

Faults can be injected: a status with headers (403/429 rate limits), a 5xx *after* the
operation took effect, or a slow answer. Issues can be deleted (410) or transferred (301 to a
home this token may read but not write): GitHub's answers there depart from its description,
and are logged like injected faults.

GraphQL (`/api/graphql`) serves the label mutations SOMAS sends, checked against GitHub's
GraphQL schema (`tests/fakes/github_graphql.py`); it is logged with the path `/graphql`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from somas_action.core.labels import LabelSpec
from tests import tiers
from tests.fakes import github_graphql
from tests.fakes.github_model import BOT, MOVED_REPOSITORY_ID, GitHubModel, _Reply
from tests.fakes.openapi import Contract, contract

__all__ = ["BOT", "PREFIX", "TOKEN", "Call", "FakeGitHub", "Fault"]

PREFIX = "/api/v3"
TOKEN = "ghs_fake-token-for-tests"


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
        """Everything but GET and GraphQL queries changes something (or tries to)."""
        if self.path == "/graphql":
            return github_graphql.is_mutation(self.body)
        return self.method != "GET"


class FakeGitHub(GitHubModel):
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
        # login -> role. octocat, the sender of the webhook examples, owns the repository.
        self.permissions: dict[str, str] = {"octocat": "admin"}
        # custom role -> the built-in role it is based on (an organization's repository roles)
        self.custom_roles: dict[str, str] = {}
        self.runs: dict[int, dict[str, Any]] = {}
        self.dispatches: list[dict[str, Any]] = []
        self._ids = itertools.count(1001)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    # -- lifecycle and helpers for tests ------------------------------------------------------

    @property
    def api_url(self) -> str:
        """What SOMAS is given as the API root (GitHub Enterprise style)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"

    def start(self) -> FakeGitHub:
        """Serve in a background thread."""
        tiers.uses(tiers.FAKES, "starts the fake GitHub")
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def add_issue(
        self, number: int, title: str, body: str = "", labels: tuple[str, ...] = ()
    ) -> None:
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

    def add_labels(self, specs: Iterable[LabelSpec]) -> None:
        """Repository labels, as `somas setup-labels` leaves them (the install's first step)."""
        with self.lock:
            for spec in specs:
                self._repo_label(spec.name, spec.color, spec.description)

    def add_comment(
        self, number: int, body: str, login: str = "octocat", kind: str = "User"
    ) -> int:
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
            if full == github_graphql.GRAPHQL_PATH and method == "POST":
                self._graphql(body)
                return
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
            moved = f"/repositories/{MOVED_REPOSITORY_ID}"
            if api_path.startswith(moved + "/"):
                with fake.lock:
                    reply = fake.answer_moved(method, api_path[len(moved) :])
                    fake.log.append(Call(method, api_path, query, body, reply.status, True))
                self._send(reply.status, reply.body, reply.headers)
                return
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
            injected = fault is not None or reply.modelled
            if not injected:
                problems += fake.contract.check_response(method, api_path, reply.status, reply.body)
            with fake.lock:
                fake.violations += problems
                fake.log.append(
                    Call(method, local or api_path, query, body, reply.status, injected)
                )
            self._send(reply.status, reply.body, reply.headers)

        def _graphql(self, body: Any) -> None:
            auth = self.headers.get("Authorization", "")
            if auth not in (f"token {TOKEN}", f"Bearer {TOKEN}"):
                self._send(401, {"message": "Bad credentials", "documentation_url": "x"})
                return
            fault = self._fault("POST", "/graphql")
            with fake.lock:
                if fault is not None:
                    status, answer = fault.status, fault.body or {"message": "injected fault"}
                    headers, problems = fault.headers, list[str]()
                else:
                    status, headers = 200, {}
                    answer, problems = github_graphql.answer(fake, body)
                fake.violations += problems
                fake.log.append(Call("POST", "/graphql", {}, body, status, fault is not None))
            self._send(status, answer, headers)

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
