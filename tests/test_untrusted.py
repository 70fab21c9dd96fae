"""core/untrusted.py: the one renderer for text SOMAS did not write, case by case."""

from __future__ import annotations

import pytest

from somas_action.core import untrusted
from somas_action.core.access import Access, AccessPolicy, decide
from tests import scenarios

ZW = untrusted.ZERO_WIDTH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("read /home/runner/work/repo/repo/src/app.py failed", "read …/app.py failed"),
        ("in /tmp/pytest-of-root/x/gone.git: no", "in …/gone.git: no"),
        ("C:\\a\\repo\\repo\\src\\app.py missing", "…\\app.py missing"),
        ("~/secrets/token.txt", "…/token.txt"),
        # Not paths: commands, URLs, dates, fractions of words.
        ("/somas approve", "/somas approve"),
        ("see https://example.com/a/b", "see https://example.com/a/b"),
        ("on 2026/01/02 and/or", "on 2026/01/02 and/or"),
        ("bidi \u202eevil\u202c zero\u200bwidth\x07", "bidi evil zerowidth"),
        ("<!-- somas:status -->", "<! -- somas:status -->"),
    ],
)
def test_scrub_removes_paths_invisible_characters_and_markers(text: str, expected: str) -> None:
    assert untrusted.scrub(text) == expected


SECURITY = scenarios.config_section().security
POLICY = AccessPolicy.from_settings(SECURITY.allowed_roles, SECURITY.outsider_reaction)


def test_scrub_bounds_the_length() -> None:
    assert untrusted.scrub("x" * 50, limit=10) == "x" * 10 + " …"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@everyone [click](https://evil.example)", "`@everyone [click](https://evil.example)`"),
        ("two\nlines", "`two lines`"),
        ("a `tick` inside", "``a `tick` inside``"),
        ("`edge`", "`` `edge` ``"),
        ("", "`(empty)`"),
    ],
)
def test_code_span_keeps_text_inert_on_one_line(text: str, expected: str) -> None:
    assert untrusted.code_span(text) == expected


def test_code_block_cannot_be_closed_from_inside() -> None:
    assert untrusted.code_block("a\n```\n@everyone") == "````text\na\n```\n@everyone\n````"


def test_table_cell_escapes_pipes() -> None:
    assert untrusted.table_cell("a | b") == "`a \\| b`"


def test_prose_breaks_mentions_references_links_and_markup() -> None:
    rendered = untrusted.prose(
        "@everyone @org/team see #12, [x](https://evil.example) www.evil.example <b>hi</b>"
    )
    assert rendered == (
        f"@{ZW}everyone @{ZW}org/team see \\#{ZW}12, \\[x\\](https:{ZW}//evil.example) "
        f"www{ZW}.evil.example \\<b\\>hi\\</b\\>"
    )


@pytest.mark.parametrize(
    ("login", "expected"),
    [("alice", "@alice"), ("a-b-9", "@a-b-9"), ("bad name", "`bad name`"), ("x--y", "`x--y`")],
)
def test_mention_only_for_well_formed_logins(login: str, expected: str) -> None:
    assert untrusted.mention(login) == expected


# -- core/access.py -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        ("admin", "admin", True),
        ("maintain", "write", True),
        ("write", "write", True),
        ("release-manager", "write", True),  # a custom role based on write
        ("triage", "read", False),
        ("auditor", "read", False),
        ("read", "read", False),
        ("none", "none", False),
    ],
)
def test_the_default_policy_allows_write_and_above(
    role: str, permission: str, allowed: bool
) -> None:
    assert decide(Access("x", role, permission), POLICY, "it").allowed is allowed


def test_a_narrower_policy_refuses_plain_writers_and_names_the_roles() -> None:
    policy = AccessPolicy.from_settings(["admin", "maintain"], "eyes")
    assert decide(Access("m", "maintain", "write"), policy, "it").allowed
    refused = decide(Access("w", "write", "write"), policy, "`/somas approve`")
    assert refused.reason == (
        "`/somas approve` needs the admin or maintain role on the repository; `w` has `write`"
    )
    assert refused.answer_in_public  # a collaborator gets told why


def test_outsiders_are_never_answered_in_public_and_read_is_never_allowed() -> None:
    # The schema refuses such a config; a policy built from it anyway fails closed: nobody.
    policy = AccessPolicy.from_settings(["read", "none"], "none")
    assert policy.allowed_roles == frozenset()
    assert not decide(Access("w", "write", "write"), policy, "it").allowed
    assert policy.outsider_reaction is None
    stranger = decide(Access.none("s"), policy, "it")
    assert not stranger.allowed and not stranger.answer_in_public
