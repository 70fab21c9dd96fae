"""The contract check itself: it must catch what it is there to catch."""

from __future__ import annotations

from somas_action.core.clock import FakeClock
from somas_action.github.api import GitHubApi, GitHubSettings
from tests import scenarios
from tests.fakes.github_server import TOKEN, FakeGitHub
from tests.fakes.openapi import contract

COMMENTS = "/repos/o/r/issues/1/comments"


def test_a_conforming_request_and_answer_pass() -> None:
    c = contract()
    answer = c.example("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "201")
    assert c.check_request("POST", COMMENTS, {}, {"body": "hi"}) == []
    assert c.check_response("POST", COMMENTS, 201, answer) == []


def test_an_undocumented_request_field_fails() -> None:
    [problem] = contract().check_request("POST", COMMENTS, {}, {"body": "hi", "pinned": True})
    assert ".pinned: field not in the description" in problem


def test_a_missing_required_field_and_a_wrong_type_fail() -> None:
    assert any(
        "'body' is a required property" in p
        for p in contract().check_request("POST", COMMENTS, {}, {})
    )
    assert contract().check_request("POST", COMMENTS, {}, {"body": 7})


def test_wrong_method_unknown_path_and_undocumented_query_fail() -> None:
    c = contract()
    assert c.check_request("PUT", COMMENTS, {}, {"body": "x"}) == [
        f"PUT {COMMENTS}: method not documented"
    ]
    assert c.check_request("GET", "/repos/o/r/no-such-thing", {}, None) == [
        "GET /repos/o/r/no-such-thing: unknown path"
    ]
    assert (
        "query parameter 'sort_by' is not documented"
        in c.check_request("GET", COMMENTS, {"sort_by": ["x"]}, None)[0]
    )
    assert "is not an integer" in c.check_request("GET", COMMENTS, {"per_page": ["many"]}, None)[0]


def test_an_undocumented_status_or_answer_field_fails() -> None:
    c = contract()
    answer = c.example("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "201")
    assert "status not documented" in c.check_response("POST", COMMENTS, 200, answer)[0]
    answer["user"]["favourite_colour"] = "blue"
    assert c.check_response("POST", COMMENTS, 201, answer) == [
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments (issues/create-comment) -> 201:"
        " response .user.favourite_colour: field not in the description"
    ]


def test_the_fake_records_what_the_real_client_sends_wrong(github: FakeGitHub) -> None:
    github.add_issue(1, "x")
    settings = GitHubSettings(
        token=TOKEN,
        repository=github.repository,
        api_url=github.api_url,
        config=scenarios.config_section().github,
    )
    GitHubApi(settings, FakeClock()).request(
        "POST", "/issues/1/comments", {"body": "x", "bogus": 1}
    )
    assert any("bogus: field not in the description" in v for v in github.violations)
    github.violations.clear()  # seen; the fixture would fail the test otherwise
