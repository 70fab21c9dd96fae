"""Real webhook payloads (npm @octokit/webhooks-examples), adjusted only where a test needs it.

Adjustments are limited to what makes a payload about *our* repository and issue: the label
name, the comment body and author, the issue number, global id and labels, the workflow inputs,
and the repository's name and default branch.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from tests.fakes.github_graphql import issue_node_id, label_node_id
from tests.fakes.openapi import ROOT

EXAMPLES = (
    ROOT / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
)


@functools.cache
def _all() -> dict[str, list[dict[str, Any]]]:
    if not EXAMPLES.exists():
        raise RuntimeError(f"{EXAMPLES} is missing: run `make test` (npm ci)")
    data = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    return {entry["name"]: entry["examples"] for entry in data}


def example(event: str, action: str | None = None) -> dict[str, Any]:
    """The first published example of `event` (with `action`), deep-copied."""
    for payload in _all()[event]:
        if action is None or payload.get("action") == action:
            return copy.deepcopy(payload)
    raise KeyError(f"no {event}.{action} example")


def _ours(payload: dict[str, Any], repository: str) -> dict[str, Any]:
    owner, name = repository.split("/")
    repo = payload["repository"]
    repo.update(name=name, full_name=repository, default_branch="main")
    repo["owner"]["login"] = owner
    return payload


def _person(user: dict[str, Any], login: str, kind: str) -> None:
    user.update(login=login, type=kind)


def issue_labeled(
    repository: str,
    number: int,
    *,
    label: str = "somas:project",
    labels: tuple[str, ...] = ("somas:project",),
    title: str = "Add a slugify helper for page URLs",
    body: str = "Page URLs need slugs.",
    sender: str = "octocat",
    sender_type: str = "User",
) -> dict[str, Any]:
    """`issues.labeled`: someone put `label` on issue `number`."""
    payload = _ours(example("issues", "labeled"), repository)
    template = payload["issue"]["labels"][0]
    payload["label"] = {**template, "name": label}
    issue = payload["issue"]
    issue.update(number=number, title=title, body=body, node_id=issue_node_id(number))
    issue["labels"] = [
        {**template, "name": name, "node_id": label_node_id(name)} for name in labels
    ]
    _person(payload["sender"], sender, sender_type)
    return payload


def comment_created(
    repository: str,
    number: int,
    body: str,
    *,
    comment_id: int,
    login: str = "octocat",
    user_type: str = "User",
    labels: tuple[str, ...] = ("somas:project",),
) -> dict[str, Any]:
    """`issue_comment.created`: `login` commented `body` on issue `number`."""
    payload = _ours(example("issue_comment", "created"), repository)
    payload["issue"].update(number=number, node_id=issue_node_id(number))
    template = {"id": 1, "url": "x", "color": "ededed", "default": False}
    payload["issue"]["labels"] = [
        {**template, "name": name, "node_id": label_node_id(name)} for name in labels
    ]
    comment = payload["comment"]
    comment.update(id=comment_id, body=body)
    _person(comment["user"], login, user_type)
    _person(payload["sender"], login, user_type)
    return payload


def workflow_dispatch(
    repository: str, inputs: dict[str, str], sender: str = "octocat"
) -> dict[str, Any]:
    """`workflow_dispatch` with these inputs (as `gh workflow run -f …` sends them)."""
    payload = _ours(example("workflow_dispatch"), repository)
    payload["inputs"] = dict(inputs)
    payload["sender"]["login"] = sender
    return payload
