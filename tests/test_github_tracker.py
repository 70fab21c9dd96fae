"""The GitHub adapter against the fake: minimal writes, no duplicates, rate limits honoured."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from somas_action.cli.commands.github import setup_labels
from somas_action.core import names
from somas_action.core.clock import FakeClock
from somas_action.core.domain import BreakerView, State
from somas_action.core.labels import label_changes, label_specs
from somas_action.github.api import (
    GitHubApi,
    GitHubError,
    GitHubSettings,
    RateLimitDeferred,
    rate_limit_wait,
)
from somas_action.github.tracker import GitHubTracker
from tests import scenarios
from tests.fakes.github_server import TOKEN, FakeGitHub, Fault

ISSUE = 7


def tracker(
    github: FakeGitHub, clock: FakeClock, timeout_seconds: int = 30, **settings: object
) -> GitHubTracker:
    options = {"min_seconds_between_writes": 0.0, **settings}
    config = GitHubSettings(
        token=TOKEN,
        repository=github.repository,
        api_url=github.api_url,
        config=scenarios.config_section(github=options).github,
        timeout_seconds=timeout_seconds,
    )
    return GitHubTracker(GitHubApi(config, clock))


def state(status: str = "in_progress", stage: str = "intake") -> State:
    created = scenarios.created_state(scenarios.config_section())
    return {**created, "status": status, "current_stage": stage}


@pytest.fixture
def issue(github: FakeGitHub) -> int:
    github.add_issue(ISSUE, "Add slugify", "x", ("bug", "somas:project"))
    return ISSUE


def test_label_reconcile_is_minimal_and_idempotent(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.add_labels(label_specs(("intake", "review")))  # `somas setup-labels`
    gh = tracker(github, clock)
    for wanted in (state(), state(), state("waiting", "review"), state("waiting", "review")):
        add, remove = label_changes(set(gh.get_issue(issue).labels), wanted)
        if add or remove:
            gh.set_labels(issue, add, remove)
    assert set(github.issues[issue]["labels"]) == {
        "bug",
        "somas:project",
        "somas:awaiting-approval",
        "somas:stage:review",
    }
    # One read of the issue; an add is one POST; adding and removing together is one GraphQL
    # request (the label ids it needs come from one listing of the repository's labels).
    assert [(c.method, c.path) for c in github.log] == [
        ("GET", "/issues/7"),
        ("POST", "/issues/7/labels"),
        ("GET", "/labels"),
        ("POST", "/graphql"),
    ]
    assert not github.violations


def test_one_request_changes_the_status_and_keeps_a_label_a_person_added_meanwhile(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.add_labels(label_specs(("review",)))
    gh = tracker(github, clock)
    gh.set_labels(issue, {"somas:in-progress"}, set())
    github.issues[issue]["labels"].append("help wanted")  # a person, after our last look
    gh.set_labels(issue, {"somas:awaiting-approval", "somas:stage:review"}, {"somas:in-progress"})
    assert github.issues[issue]["labels"] == [
        "bug",
        "somas:project",
        "help wanted",
        "somas:awaiting-approval",
        "somas:stage:review",
    ]
    [mutation] = [c for c in github.log if c.path == "/graphql"]
    assert mutation.is_write and mutation.status == 200
    assert "help wanted" in gh.get_issue(issue).labels  # the answer told us
    assert not github.violations


def test_a_label_the_repository_lacks_is_created_by_rest(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    gh = tracker(github, clock)  # no `somas setup-labels`: GraphQL cannot name a missing label
    gh.set_labels(issue, {"somas:in-progress"}, {"somas:project"})
    assert [(c.method, c.path) for c in github.log] == [
        ("GET", "/issues/7"),
        ("GET", "/labels"),
        ("POST", "/issues/7/labels"),
        ("DELETE", "/issues/7/labels/somas%3Aproject"),
    ]
    assert github.issues[issue]["labels"] == ["bug", "somas:in-progress"]


def test_a_label_removed_by_someone_else_meanwhile_is_fine(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    gh = tracker(github, clock)
    gh.set_labels(issue, {"somas:in-progress"}, set())
    github.issues[issue]["labels"].remove("somas:in-progress")  # a person removed it
    gh.set_labels(issue, set(), {"somas:in-progress"})
    assert github.log[-1].status == 404
    assert "somas:in-progress" not in gh.get_issue(issue).labels


def test_breaker_open_adds_the_circuit_open_label() -> None:
    opened: BreakerView = {
        "state": "open",
        "since": None,
        "retry_at": None,
        "reason": None,
        "changed_by": None,
    }
    wanted: State = {**state(), "circuit_breakers": {"github_api": opened}}
    assert "somas:circuit-open" in label_changes(set(), wanted)[0]


def test_status_comment_is_edited_in_place_and_unchanged_text_is_not_sent(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    gh = tracker(github, clock)
    for text in ("one", "two", "two"):
        gh.upsert_comment(issue, "somas:status", text)
    assert [c["body"] for c in github.issue_comments(issue)] == ["two\n\n<!-- somas:status -->"]
    assert [c.method for c in github.log] == ["GET", "POST", "PATCH"]


def test_a_persons_comment_carrying_our_marker_is_never_taken_for_ours(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.add_comment(issue, "gotcha\n\n<!-- somas:status -->", login="mallory")
    tracker(github, clock).upsert_comment(issue, "somas:status", "real")
    bodies = {c["user"]["login"]: c["body"] for c in github.issue_comments(issue)}
    assert bodies == {
        "mallory": "gotcha\n\n<!-- somas:status -->",
        "github-actions[bot]": "real\n\n<!-- somas:status -->",
    }


def test_a_comment_post_whose_answer_is_lost_is_looked_up_not_reposted(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.inject(Fault("POST", r"/issues/7/comments", status=502, after=True))
    tracker(github, clock).upsert_comment(issue, "somas:event:evt-1", "stage done")
    assert len(github.issue_comments(issue)) == 1
    # One POST (PyGithub did not retry it), then a look that finds it: no second POST.
    assert [(c.method, c.status) for c in github.log] == [("GET", 200), ("POST", 502), ("GET", 200)]


def test_a_comment_post_that_failed_before_creating_is_sent_once_more(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.inject(Fault("POST", r"/issues/7/comments", status=503))
    tracker(github, clock).upsert_comment(issue, "somas:event:evt-1", "stage done")
    assert len(github.issue_comments(issue)) == 1
    assert [c.method for c in github.log] == ["GET", "POST", "GET", "POST"]


def test_retry_after_is_honoured_on_the_injected_clock(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.inject(Fault("POST", r"/issues/7/labels", status=429, headers={"Retry-After": "30"}))
    tracker(github, clock).set_labels(issue, {"somas:paused"}, set())
    assert 30.0 in clock.sleeps
    assert "somas:paused" in github.issues[issue]["labels"]


def test_primary_limit_waits_until_the_reset(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    reset = int(clock.now().timestamp()) + 120
    github.inject(
        Fault(
            "GET",
            r"/issues/7",
            status=403,
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            body={
                "message": "API rate limit exceeded for installation ID 1.",
                "documentation_url": "https://docs.github.com",
            },
        )
    )
    assert tracker(github, clock).get_issue(issue).number == issue
    assert len(clock.sleeps) == 1 and 115 <= clock.sleeps[0] <= 125


def test_a_wait_longer_than_the_run_affords_is_deferred(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.inject(Fault("GET", r"/issues/7", status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimitDeferred) as caught:
        tracker(github, clock, max_rate_limit_wait_seconds=300.0).get_issue(issue)
    assert caught.value.wait_seconds == 3600 and clock.sleeps == []


def test_a_plain_403_is_a_permission_error_not_a_rate_limit(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.inject(
        Fault(
            "POST",
            r"/issues/7/comments",
            status=403,
            body={"message": "Resource not accessible by integration", "documentation_url": "x"},
        )
    )
    with pytest.raises(GitHubError, match="HTTP 403: Resource not accessible by integration"):
        tracker(github, clock).upsert_comment(issue, "somas:status", "x")
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("status", "headers", "message", "wait"),
    [
        (429, {"Retry-After": "7"}, "", 7.0),
        (403, {"retry-after": "0"}, "", 0.0),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1100"}, "", 101.0),
        (403, {}, "You have exceeded a secondary rate limit", 60.0),
        (429, {}, "", 60.0),
        (403, {}, "Must have admin rights", None),
        (500, {"Retry-After": "5"}, "", None),
    ],
)
def test_rate_limit_wait(
    status: int, headers: dict[str, str], message: str, wait: float | None
) -> None:
    assert rate_limit_wait(status, headers, message, now=1000.0) == wait


def test_a_slow_answer_times_out_and_a_read_is_retried(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.inject(Fault("GET", r"/issues/7", status=200, delay=1.5))
    gh = tracker(github, clock, timeout_seconds=1)
    assert gh.get_issue(issue).title == "Add slugify"
    assert clock.sleeps == [2.0]  # one backoff on the fake clock, then the retry succeeded


def test_five_hundreds_on_reads_are_retried_a_bounded_number_of_times(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    github.inject(Fault("GET", r"/issues/7", status=502, times=10))
    with pytest.raises(GitHubError, match="HTTP 502"):
        tracker(github, clock, max_retries=3).get_issue(issue)
    assert len(github.log) == 4 and clock.sleeps == [2.0, 4.0, 8.0]


def test_writes_are_spaced_on_the_injected_clock(
    github: FakeGitHub, clock: FakeClock, issue: int
) -> None:
    gh = tracker(github, clock, min_seconds_between_writes=1.0)
    clock.step = __import__("datetime").timedelta(0)
    gh.set_labels(issue, {"a-label"}, set())
    gh.set_labels(issue, {"b-label"}, set())
    assert clock.sleeps == [1.0]


def test_the_guard_sees_every_attempt(
    github: FakeGitHub, clock: FakeClock, issue: int, mocker: MockerFixture
) -> None:
    gh = tracker(github, clock)
    # A guard that lets every attempt through and remembers the service it was asked about.
    gh.api.guard = guard = mocker.Mock(side_effect=lambda service, attempt: attempt())
    github.inject(Fault("GET", r"/issues/7", status=500))
    gh.get_issue(issue)
    assert [c.args[0] for c in guard.call_args_list] == ["github_api", "github_api"]


def test_pull_request_is_opened_once_then_updated(github: FakeGitHub, clock: FakeClock) -> None:
    pushed: list[str] = []
    gh = tracker(github, clock)
    gh.before_pull_request = pushed.append
    url = gh.upsert_pull_request("somas/project-7", "main", "Slugify (#7)", "Closes #7.")
    assert gh.upsert_pull_request("somas/project-7", "main", "Slugify (#7)", "Closes #7.") == url
    fresh = tracker(github, clock)  # a later run: finds the open one, updates the body
    assert (
        fresh.upsert_pull_request("somas/project-7", "main", "Slugify (#7)", "Closes #7. v2") == url
    )
    [pull] = github.pulls.values()
    assert pull["body"] == "Closes #7. v2" and pushed == ["somas/project-7"] * 2
    assert [c.method for c in github.log] == ["GET", "POST", "GET", "PATCH"]


def test_a_failed_projects_pull_request_is_closed_with_the_reason_once(
    github: FakeGitHub, clock: FakeClock
) -> None:
    gh = tracker(github, clock)
    url = gh.upsert_pull_request("somas/project-7", "main", "Slugify (#7)", "Closes #7.")
    later = tracker(github, clock)  # the run that fails: finds the open pull request

    assert later.close_pull_request("somas/project-7", "failed at validation") == url

    [pull] = github.pulls.values()
    assert pull["state"] == "closed"
    [comment] = github.issue_comments(pull["number"])
    assert comment["body"].startswith("failed at validation")
    # A retry of the same run finds nothing open: no second comment, no second close.
    assert later.close_pull_request("somas/project-7", "failed at validation") is None
    assert tracker(github, clock).close_pull_request("somas/project-7", "again") is None
    assert len(github.issue_comments(pull["number"])) == 1
    assert not [c for c in github.log if c.status >= 400]  # every request met the contract


def test_runs_are_listed_cancelled_and_a_continuation_dispatched(
    github: FakeGitHub, clock: FakeClock
) -> None:
    gh = tracker(github, clock)
    running, done = github.add_run("in_progress"), github.add_run("completed")
    assert [r.id for r in gh.list_runs("in_progress")] == [running]
    assert gh.cancel_run(running) is True and gh.cancel_run(done) is False
    gh.dispatch("somas-resume.yml", "main", {"project_id": "project-7", "checkpoint_id": "cp-1"})
    assert github.dispatches[0]["inputs"] == {"project_id": "project-7", "checkpoint_id": "cp-1"}


def test_setup_labels_is_idempotent_and_fixes_drift(
    repo: Path, github: FakeGitHub, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "SOMAS_GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": github.repository,
        "GITHUB_API_URL": github.api_url,
    }
    github.repo_labels.clear()
    github.add_issue(1, "x", "", ("somas:failed",))  # exists with the wrong colour
    assert setup_labels(repo, env, clock) == 0
    specs = label_specs(names.DEFAULT_STAGES)
    assert {n: (lbl["color"], lbl["description"]) for n, lbl in github.repo_labels.items()} == {
        s.name: (s.color, s.description) for s in specs
    }
    assert "updated somas:failed" in capsys.readouterr().out
    writes = len([c for c in github.log if c.is_write])
    assert setup_labels(repo, env, clock) == 0
    assert "every somas label is in place" in capsys.readouterr().out
    assert len([c for c in github.log if c.is_write]) == writes
    assert all(len(s.description) <= 100 for s in specs)


def test_wrong_token_is_a_clear_error(github: FakeGitHub, clock: FakeClock, issue: int) -> None:
    config = GitHubSettings(
        token="wrong",
        repository=github.repository,
        api_url=github.api_url,
        config=scenarios.config_section().github,
    )
    with pytest.raises(GitHubError, match="HTTP 401: Bad credentials"):
        GitHubTracker(GitHubApi(config, clock)).get_issue(issue)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GITHUB_REPOSITORY": "o/r"}, "GITHUB_TOKEN: not set"),
        (
            {"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "nope"},
            "GITHUB_REPOSITORY: 'nope' is not owner/name",
        ),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(Exception, match=message):
        GitHubSettings.from_env(env, scenarios.config_section().github)


def test_settings_for_github_enterprise() -> None:
    settings = GitHubSettings.from_env(
        {
            "GITHUB_TOKEN": "t",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_API_URL": "https://ghe.example/api/v3/",
            "GITHUB_SERVER_URL": "https://ghe.example",
            "GITHUB_RUN_ID": "42",
        },
        scenarios.config_section().github,
    )
    assert settings.api_url == "https://ghe.example/api/v3"
    assert settings.run_url == "https://ghe.example/o/r/actions/runs/42"
