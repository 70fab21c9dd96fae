"""Human output that fits an 80-column terminal: long lines wrap with a hanging indent."""

from __future__ import annotations

import sys
import textwrap

WIDTH = 80


def echo(text: str, indent: int = 5) -> None:
    """Print `text`, each line wrapped at 80 columns with continuation lines indented."""
    for line in text.split("\n"):
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
