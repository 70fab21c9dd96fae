"""Hold the mirror's label and status-comment writes until someone could look at them.

The runner mirrors after every committed batch. A stage's closing batch is followed at once by
the next stage's opening batch, so the first mirror is overwritten milliseconds later; sending it
costs writes (and rate limit) that nobody sees. The buffer keeps only the latest wanted labels
and comment bodies and sends them when the flow is about to wait (an agent call, the end of the
run): the same final picture on the issue, one status edit per stage fewer.
"""

from __future__ import annotations

import dataclasses

from somas_action.core.ports import Issue, Tracker


class MirrorBuffer:
    """A Tracker that defers `set_labels` and `upsert_comment` until `flush`."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.flush_after_next_mirror = False
        self._labels: dict[int, tuple[set[str], set[str]]] = {}
        self._comments: dict[tuple[int, str], str] = {}

    def get_issue(self, number: int) -> Issue:
        """The issue as it will be once held label changes are sent."""
        issue = self.tracker.get_issue(number)
        held = self._labels.get(number)
        if held is None:
            return issue
        add, remove = held
        labels = tuple(sorted((set(issue.labels) | add) - remove))
        return dataclasses.replace(issue, labels=labels)

    def set_labels(self, number: int, add: set[str], remove: set[str]) -> None:
        """Hold a label change (merged with the ones already held)."""
        held_add, held_remove = self._labels.get(number, (set(), set()))
        self._labels[number] = ((held_add - remove) | add, (held_remove - add) | remove)

    def upsert_comment(self, number: int, marker: str, body: str) -> None:
        """Hold the latest body for a comment; the mirror's last call, so it may flush."""
        self._comments[(number, marker)] = body
        if self.flush_after_next_mirror:
            self.flush_after_next_mirror = False
            self.flush()

    def upsert_pull_request(self, head: str, base: str, title: str, body: str) -> str:
        """Pull requests are not held: the runner records the reference it gets back."""
        return self.tracker.upsert_pull_request(head, base, title, body)

    def close_pull_request(self, head: str, reason: str) -> str | None:
        """Not held: a failed project's pull request is closed as it fails."""
        return self.tracker.close_pull_request(head, reason)

    def upsert_alert(self, title: str, body: str | None) -> str | None:
        """Not held: the monitor writes it once per run."""
        return self.tracker.upsert_alert(title, body)

    def cancel_in_progress_runs(self) -> list[str]:
        """Not held: cancelling is an operator's immediate action."""
        return self.tracker.cancel_in_progress_runs()

    def flush(self) -> None:
        """Send what is held: label changes still needed, then comments."""
        labels, self._labels = self._labels, {}
        for number, (add, remove) in labels.items():
            current = set(self.tracker.get_issue(number).labels)
            add, remove = add - current, remove & current
            if add or remove:
                self.tracker.set_labels(number, add, remove)
        comments, self._comments = self._comments, {}
        for (number, marker), body in comments.items():
            self.tracker.upsert_comment(number, marker, body)

    def discard(self) -> None:
        """Forget what is held (the batches it mirrored were thrown away)."""
        self._labels, self._comments = {}, {}
        self.flush_after_next_mirror = False
