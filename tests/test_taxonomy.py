"""The error taxonomy: classification of provider responses, policies, Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from somas_action.app.compose import run_budget_seconds
from somas_action.cli.main import main
from somas_action.config.loader import load_config
from somas_action.core.error_kinds import POLICIES, policy_for, retry_after_seconds
from somas_action.core.errors import ConfigError
from somas_action.providers.http_errors import classify_status

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
KEY = "sk-secret-0123456789"


@pytest.mark.parametrize(
    ("status", "body", "kind", "counts"),
    [
        (500, {"error": {"type": "server_error", "message": "oops"}}, "transient", True),
        (503, {}, "transient", True),
        (529, {"type": "error", "error": {"type": "overloaded_error"}}, "transient", True),
        (429, {"error": {"code": "rate_limit_exceeded"}}, "rate_limited", True),
        (429, {"error": {"code": "insufficient_quota"}}, "quota", True),
        (408, {}, "timeout", True),
        (400, {"error": {"message": "bad"}}, "permanent", False),
        (404, {"error": {"message": "no such model"}}, "permanent", False),
        (401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}, "auth", False),
        (403, {}, "auth", False),
    ],
)
def test_http_failures_are_classified_and_only_outages_count(
    status: int, body: object, kind: str, counts: bool
) -> None:
    error = classify_status("openai", "gpt-4o", status, body, {}, NOW, [KEY])
    assert (error.kind, error.status, error.service) == (kind, status, "openai")
    assert policy_for(error.kind).counts_for_breaker is counts
    assert KEY not in str(error)


def test_policies_match_the_runbook() -> None:
    counted = {kind for kind, p in POLICIES.items() if p.counts_for_breaker}
    assert counted == {"transient", "timeout", "rate_limited", "quota"}
    never_retried = {kind for kind, p in POLICIES.items() if not p.retry_call}
    assert {"auth", "config", "permanent", "cancelled", "budget_exhausted"} <= never_retried
    assert policy_for("cancelled") == POLICIES["cancelled"]
    assert not policy_for("cancelled").counts_for_breaker and policy_for("cancelled").defer
    assert policy_for("something_new").retry_stage  # unknown kinds keep the old behaviour


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "Thu, 01 Jan 2026 09:00:30 GMT"}, 30.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-requests": "12ms"}, 0.012),
        ({"anthropic-ratelimit-requests-reset": "2026-01-01T09:01:00Z"}, 60.0),
        ({"anthropic-ratelimit-tokens-reset": "2025-12-31T09:00:00Z"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], seconds: float | None) -> None:
    waited = retry_after_seconds(headers, NOW)
    assert waited == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agent_provider:\n  type: magic\n", "agent_provider.type: 'magic' is not one of"),
        (
            "agent_provider:\n  providers:\n    openai: {base_url: ftp://x}\n",
            "agent_provider.providers.openai.base_url: 'ftp://x' does not match",
        ),
        (
            "agent_provider:\n  retry: {max_calls: 50}\n",
            "agent_provider.retry.max_calls: 50 is greater than the maximum of 10",
        ),
        (
            "agent_provider:\n  pricing: {gpt-x: {input_per_mtok: 1}}\n",
            "agent_provider.pricing.gpt-x: 'output_per_mtok' is a required property",
        ),
    ],
)
def test_bad_provider_config_is_one_line_naming_the_field(
    somas_folder: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (somas_folder / ".somas" / "config.yml").write_text(text)
    assert main(["--repo", str(somas_folder), "breaker", "status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "config.yml" in err


def test_the_run_budget_comes_from_the_environment_or_the_config(
    somas_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(somas_folder)
    assert run_budget_seconds(config) is None
    (somas_folder / ".somas" / "config.yml").write_text(
        "error_handling:\n  run_budget_seconds: 3000\n"
    )
    assert run_budget_seconds(load_config(somas_folder)) == 3000
    monkeypatch.setenv("SOMAS_RUN_BUDGET_SECONDS", "1200")
    assert run_budget_seconds(load_config(somas_folder)) == 1200
    monkeypatch.setenv("SOMAS_RUN_BUDGET_SECONDS", "an hour")
    with pytest.raises(ConfigError, match="SOMAS_RUN_BUDGET_SECONDS: 'an hour' is not a positive"):
        run_budget_seconds(config)
