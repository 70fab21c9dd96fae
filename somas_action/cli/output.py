"""Human output that fits an 80-column terminal: long lines wrap with a hanging indent."""

from __future__ import annotations

import sys
import textwrap

WIDTH = 80


def safe_line(text: str) -> str:
    """One line for the terminal: control characters escaped (a title or reply may hold any,
    and an escape sequence in one must not reach the terminal raw)."""
    text = text.replace("\n", " ")
    if text.isprintable():  # nearly always: no character by character pass
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def echo(text: str, indent: int = 5) -> None:
    """Print `text`, each line wrapped at 80 columns with continuation lines indented, and its
    control characters escaped."""
    for raw in text.split("\n"):
        line = safe_line(raw)
        if len(line) <= WIDTH:
            print(line, file=sys.stdout)
            continue
        lead = len(line) - len(line.lstrip(" "))
        wrapped = textwrap.fill(
            line,
            width=WIDTH,
            subsequent_indent=" " * (lead + indent),
            break_long_words=True,
            break_on_hyphens=False,
        )
        print(wrapped, file=sys.stdout)
