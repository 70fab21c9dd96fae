"""Human output that fits an 80-column terminal: long lines wrap with a hanging indent."""

from __future__ import annotations

import sys
import textwrap

WIDTH = 80


def echo(line: str, indent: int = 5) -> None:
    """Print `line`, wrapped at 80 columns with continuation lines indented."""
    if len(line) <= WIDTH:
        print(line, file=sys.stdout)
        return
    lead = len(line) - len(line.lstrip(" "))
    print(
        textwrap.fill(
            line,
            width=WIDTH,
            subsequent_indent=" " * (lead + indent),
            break_long_words=True,
            break_on_hyphens=False,
        ),
        file=sys.stdout,
    )
