"""Hold the mirror's label and status-comment writes until someone could look at them.

The runner mirrors after every committed batch, and most batches are followed at once by
another: sending each mirror costs writes (and rate limit) that nobody sees. The buffer keeps
only the latest wanted labels and comment bodies and sends the difference when the run is about
to wait or ends:

- the run's first wait (its first agent call): labels and the status comment, so the issue
  shows at once that SOMAS is at work;
- every later wait: the status comment only (its stage table follows the stages; the labels
  say where the project stands, which only changes for a person when the run stops);
- the end of the run: labels and the status comment.

A write that fails is kept for the next flush and never aborts the run (the mirror is a
reconciler: the next flush or run sends what is still wanted). Rate limits are the exception:
they hand the run over to a continuation, as every other GitHub request does. An issue that is
gone (deleted, transferred) stops every later write to it; `gone` says why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from somas_action.core.errors import IssueGone
from somas_action.core.ports import Issue, Tracker
from somas_action.github.api import GitHubError, RateLimitDeferred


def _quiet(line: str) -> None:
    return None


class MirrorBuffer:
    """A Tracker that defers `set_labels` and `upsert_comment` until `flush`."""

    def __init__(self, tracker: Tracker, say: Callable[[str], None] = _quiet) -> None:
        self.tracker = tracker
        self.say = say
        self.flush_after_next_mirror = False
        self.gone: IssueGone | None = None
        self._labels_sent = False
        self._labels: dict[int, tuple[set[str], set[str]]] = {}
        self._comments: dict[tuple[int, str], str] = {}

    def get_issue(self, number: int) -> Issue:
        """The issue as it will be once held label changes are sent.

        When it cannot be read, the mirror goes on as if it had no labels (the flush reads it
        again before writing): the mirror never stops a run.
        """
        issue = self._read(number) or Issue(number, "", "", ())
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
            self.flush(labels=not self._labels_sent)

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

    def flush(self, labels: bool = True) -> None:
        """Send what is held and still differs: label changes (unless `labels` is False), then
        comments. What fails stays held for the next flush."""
        if self.gone is not None:
            self.discard()
            return
        if labels:
            self._labels_sent = True
            held, self._labels = self._labels, {}
            for number, (add, remove) in held.items():
                self._send_labels(number, add, remove)
        comments, self._comments = self._comments, {}
        for (number, marker), body in comments.items():
            self._send_comment(number, marker, body)

    def _send_comment(self, number: int, marker: str, body: str) -> None:
        self._write(
            f"status comment of #{number}",
            lambda: self.tracker.upsert_comment(number, marker, body),
            lambda: self._comments.setdefault((number, marker), body),
        )

    def _read(self, number: int) -> Issue | None:
        read: list[Issue] = []
        self._write(f"issue #{number}", lambda: read.append(self.tracker.get_issue(number)))
        return read[0] if read else None

    def _send_labels(self, number: int, add: set[str], remove: set[str]) -> None:
        issue = self._read(number)
        if issue is None:
            self.set_labels(number, add, remove)  # keep them for the next flush
            return
        current = set(issue.labels)
        add, remove = add - current, remove & current
        if add or remove:
            self._write(
                f"labels of #{number}",
                lambda: self.tracker.set_labels(number, add, remove),
                lambda: self.set_labels(number, add, remove),
            )

    def _write(
        self, what: str, send: Callable[[], object], keep: Callable[[], object] = lambda: None
    ) -> None:
        if self.gone is not None:
            return
        try:
            send()
        except IssueGone as exc:
            self.gone = exc
            self.discard()
        except RateLimitDeferred:
            keep()
            raise
        except GitHubError as exc:
            keep()
            self.say(f"somas: could not reach the {what} ({exc}); a later flush retries")

    def discard(self) -> None:
        """Forget what is held (the batches it mirrored were thrown away)."""
        self._labels, self._comments = {}, {}
        self.flush_after_next_mirror = False
