"""Telling "the issue is gone" from other failures of a write to it.

A deleted issue answers 410 Gone. A transferred one answers 301 Moved Permanently; PyGithub
follows the redirect on its own, so a write then lands in the issue's new repository, where this
run's token may not write (403/404), and only reading the issue shows where it went: its
`repository_url` is no longer ours. Any other failure (a permission 403 with the issue still
here, a 422) is not the issue's absence and is reported as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from somas_action.core.errors import IssueGone
from somas_action.github.api import GitHubApi, GitHubError

# Statuses a write to a deleted or moved issue can answer with (after a followed redirect too).
_MAYBE_GONE = frozenset({301, 403, 404, 410})


def gone_after(
    api: GitHubApi, number: int, failure: GitHubError, *, existed: bool = True
) -> IssueGone | None:
    """Why a request about issue `number` failed, if the reason is that the issue left.

    `existed`: the issue is known to have existed (a project was opened for it), so a 404 means
    it left; otherwise a 404 is just no such issue.
    """
    if failure.status not in _MAYBE_GONE or (failure.status == 404 and not existed):
        return None
    if failure.status == 410:
        return IssueGone(number, "deleted", "GitHub answers 410 Gone")
    try:
        data = api.send(f"GET issue #{number}", "GET", f"/issues/{number}")
    except GitHubError as exc:
        return _gone_from_status(number, exc.status)
    home = str(data.get("repository_url") or "").rstrip("/")
    if home and home.lower() != api.repo_url.lower():  # GitHub's names ignore case
        where = "/".join(home.split("/")[-2:]) + f"#{data.get('number', number)}"
        return IssueGone(number, "transferred", "GitHub answers 301 Moved Permanently", where)
    return None


def _gone_from_status(number: int, status: int | None) -> IssueGone | None:
    if status == 410:
        return IssueGone(number, "deleted", "GitHub answers 410 Gone")
    if status == 301:
        return IssueGone(number, "transferred", "GitHub answers 301 Moved Permanently")
    if status == 404:
        # Transferred to a repository this token cannot see looks the same as never existing.
        return IssueGone(number, "deleted or transferred", "GitHub answers 404 Not Found")
    return None


@contextmanager
def about_issue(api: GitHubApi, number: int, *, existed: bool = True) -> Iterator[None]:
    """Requests about issue `number`: a failure because the issue left raises `IssueGone`."""
    try:
        yield
    except GitHubError as exc:
        gone = gone_after(api, number, exc, existed=existed)
        if gone is not None:
            raise gone from None
        raise
