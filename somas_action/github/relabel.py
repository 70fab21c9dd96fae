"""A change of an issue's labels in one request: what is added and what is removed, together.

REST takes one request to add labels and one per label removed, and its only single-request
alternative (PUT, "set all labels") would drop a label a person added since SOMAS last looked.
GraphQL runs the mutations of one document in order, and `addLabelsToLabelable` and
`removeLabelsFromLabelable` name exactly the labels to add and to remove: a change of status (one
label out, one in) is one request, and every other label stays as it is.

The mutations take global ids, of the issue and of each label. They come with what the run sees
anyway (the event payload's issue and labels, every REST answer); a label never seen is looked up
in the repository's labels, once per run. A label the repository does not have yet (before
`somas setup-labels`) can only be made by REST's add, which creates it: the caller falls back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from somas_action.core.domain import JsonObject

_ADD = (
    "added: addLabelsToLabelable(input: {labelableId: $issue, labelIds: $add}) "
    "{ labelable { labels(first: 100) { nodes { id name } } } }"
)
_REMOVE = (
    "removed: removeLabelsFromLabelable(input: {labelableId: $issue, labelIds: $remove}) "
    "{ labelable { labels(first: 100) { nodes { id name } } } }"
)


class LabelIds:
    """Global ids of labels by name, and of issues by number, as the run has seen them."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        self.issues: dict[int, str] = {}

    def remember(self, labels: Iterable[JsonObject]) -> None:
        """Keep the global id of every label object that has one (`node_id` or GraphQL `id`)."""
        for label in labels:
            node_id = label.get("node_id") or label.get("id")
            if isinstance(node_id, str) and label.get("name"):
                self.labels[str(label["name"])] = node_id

    def missing(self, names: Iterable[str]) -> set[str]:
        """The names whose global id is not known."""
        return {name for name in names if name not in self.labels}


def relabel_request(issue_id: str, add: list[str], remove: list[str]) -> tuple[str, dict[str, Any]]:
    """The GraphQL document and variables that add and remove these label ids on an issue."""
    declared = ["$issue: ID!"]
    parts = []
    variables: dict[str, Any] = {"issue": issue_id}
    if add:
        declared.append("$add: [ID!]!")
        parts.append(_ADD)
        variables["add"] = add
    if remove:
        declared.append("$remove: [ID!]!")
        parts.append(_REMOVE)
        variables["remove"] = remove
    return f"mutation({', '.join(declared)}) {{ {' '.join(parts)} }}", variables


def labels_after(data: JsonObject) -> list[JsonObject]:
    """The issue's labels after the request (from the last mutation that ran)."""
    last = data.get("removed") or data.get("added") or {}
    labelable = last.get("labelable") or {}
    nodes: list[JsonObject] = (labelable.get("labels") or {}).get("nodes") or []
    return nodes
