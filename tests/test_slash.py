"""The /somas comment grammar: strict, never guessing."""

from __future__ import annotations

import pytest

from somas_action.core.slash import GrammarError, SlashCommand, parse


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/somas start", SlashCommand("start")),
        ("/somas status", SlashCommand("status")),
        ("  /somas approve  \n", SlashCommand("approve")),
        ("/somas reject", SlashCommand("reject")),
        (
            "/somas reject the tests are too thin",
            SlashCommand("reject", {"reason": "the tests are too thin"}),
        ),
        (
            "/somas reject\nfirst line\nsecond",
            SlashCommand("reject", {"reason": "first line\nsecond"}),
        ),
        ("/somas retry", SlashCommand("retry")),
        ("/somas restart validation", SlashCommand("restart", {"stage": "validation"})),
        ("/somas resume", SlashCommand("resume")),
        (
            "/somas resume cp-000042-validation",
            SlashCommand("resume", {"checkpoint": "cp-000042-validation"}),
        ),
        ("/somas pause", SlashCommand("pause")),
        ("/somas unpause", SlashCommand("unpause")),
        ("/somas cancel", SlashCommand("cancel")),
        (
            "/somas agent debugger look at the failing test",
            SlashCommand(
                "agent", {"agent": "debugger", "instructions": "look at the failing test"}
            ),
        ),
    ],
)
def test_well_formed_commands(body: str, expected: SlashCommand) -> None:
    assert parse(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "thanks!",
        "I ran /somas approve earlier",
        "/somasapprove",
        "> /somas approve",
        "",
        "/SOMAS approve",
    ],
)
def test_conversation_is_not_a_command(body: str) -> None:
    assert parse(body) is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("/somas", "needs a command"),
        ("/somas aprove", "unknown command `aprove`"),
        ("/somas Approve", "unknown command"),
        ("/somas approve now please", "takes no arguments"),
        ("/somas status\nand more", "takes no arguments"),
        ("/somas restart", "exactly one stage name"),
        ("/somas restart ../../etc", "exactly one stage name"),
        ("/somas restart review now", "exactly one stage name"),
        ("/somas resume a b", "at most one checkpoint"),
        ("/somas resume $(rm -rf /)", "at most one checkpoint"),
        ("/somas agent", "needs an agent name"),
        ("/somas agent Debugger do it", "needs an agent name"),
        ("/somas agent debugger", "needs instructions"),
        ("/somas reject " + "x" * 5000, "the limit is 4000"),
        ("/somas `rm -rf`", "unknown command `rm`"),
    ],
)
def test_malformed_commands_say_what_is_wrong(body: str, problem: str) -> None:
    with pytest.raises(GrammarError, match=problem.replace("(", r"\(").replace("$", r"\$")):
        parse(body)
