"""The `/somas …` comment grammar: strict, so a typo is refused with the usage, never guessed.

A comment is a command only when its first non-blank line starts with `/somas`; anything else
is conversation and is ignored. Verbs and their arguments:

    /somas start | status | approve | retry | pause | unpause | cancel
    /somas reject [reason…]
    /somas restart <stage>
    /somas resume [checkpoint]
    /somas agent <name> <instructions…>

Free text (a reason, instructions) may continue on the following lines; it is data, stored and
shown, never interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from somas_action.core.names import AGENT_NAME_RE, CHECKPOINT_ID_RE, STAGE_NAME_RE

PREFIX = "/somas"
MAX_TEXT = 4000

NO_ARGUMENTS = ("start", "status", "approve", "retry", "pause", "unpause", "cancel")
VERBS = (*NO_ARGUMENTS, "reject", "restart", "resume", "agent")
USAGE = (
    "`/somas start|status|approve|retry|pause|unpause|cancel`, `/somas reject [reason]`, "
    "`/somas restart <stage>`, `/somas resume [checkpoint]`, `/somas agent <name> <instructions>`"
)


@dataclass(frozen=True)
class SlashCommand:
    """A well-formed command: the verb and its named arguments."""

    verb: str
    args: dict[str, str] = field(default_factory=dict)


class GrammarError(ValueError):
    """A `/somas` comment that does not follow the grammar; the message says what is wrong."""


def parse(body: str) -> SlashCommand | None:
    """The command in a comment body, None if it is not a command, or GrammarError."""
    lines = body.replace("\r\n", "\n").strip().split("\n")
    first = lines[0].strip() if lines else ""
    if (
        first != PREFIX
        and not first.startswith(PREFIX + " ")
        and not first.startswith(PREFIX + "\t")
    ):
        return None
    words = first[len(PREFIX) :].split()
    rest = "\n".join(lines[1:]).strip()
    if not words:
        raise GrammarError(f"`/somas` needs a command: {USAGE}")
    verb, params = words[0], words[1:]
    if verb not in VERBS:
        raise GrammarError(f"unknown command `{_clip(verb)}`: {USAGE}")
    if verb in NO_ARGUMENTS:
        if params or rest:
            raise GrammarError(f"`/somas {verb}` takes no arguments")
        return SlashCommand(verb)
    if verb == "reject":
        reason = _text(" ".join(params), rest)
        return SlashCommand(verb, {"reason": reason} if reason else {})
    if verb == "restart":
        if len(params) != 1 or rest or not STAGE_NAME_RE.match(params[0]):
            raise GrammarError("`/somas restart <stage>` needs exactly one stage name, e.g. review")
        return SlashCommand(verb, {"stage": params[0]})
    if verb == "resume":
        if len(params) > 1 or rest or (params and not CHECKPOINT_ID_RE.match(params[0])):
            raise GrammarError(
                "`/somas resume [checkpoint]` takes at most one checkpoint id, "
                "e.g. cp-000042-validation"
            )
        return SlashCommand(verb, {"checkpoint": params[0]} if params else {})
    # agent
    if not params or not AGENT_NAME_RE.match(params[0]):
        raise GrammarError(
            "`/somas agent <name> <instructions>` needs an agent name, e.g. debugger"
        )
    instructions = _text(" ".join(params[1:]), rest)
    if not instructions:
        raise GrammarError(f"`/somas agent {params[0]}` needs instructions after the agent name")
    return SlashCommand(verb, {"agent": params[0], "instructions": instructions})


def _text(inline: str, rest: str) -> str:
    text = "\n".join(part for part in (inline.strip(), rest) if part)
    if len(text) > MAX_TEXT:
        raise GrammarError(f"text is {len(text)} characters; the limit is {MAX_TEXT}")
    return text


def _clip(word: str) -> str:
    """A user's word, shortened and stripped of backticks before we quote it back."""
    return word.replace("`", "")[:40]
