"""The one renderer for untrusted text that SOMAS shows on GitHub.

Untrusted text is anything SOMAS did not write itself: agent replies, issue titles and bodies,
provider and exception messages, test output. Every comment, status line, pull-request body,
alert and job summary renders such text through one of these functions, never raw:

- `code_block` (multi-line) and `code_span` (one line) put it in code, where GitHub renders no
  mention, link, image, HTML or formatting; the fence is longer than any backtick run inside;
- `prose` keeps it readable as text but escapes Markdown, and breaks mentions (`@user`,
  `@org/team`), issue references (`#12`) and autolinks (`https://`, `www.`) with a zero-width
  space, so it notifies no one and links nowhere;
- all of them first `scrub` it: control and bidirectional-override characters removed, absolute
  file paths (the runner's `/home/runner/work/...`, `C:\\a\\...`) cut to their last component,
  `<!--` broken so that no text can pose as one of SOMAS's hidden markers, and the length bounded.
"""

from __future__ import annotations

import re

# C0 controls (not tab/newline), DEL, zero-width and bidi controls: invisible text tricks.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_PATH_PART = r"[^\s/\\'\"`<>|()\[\]{},;]+"
# An absolute path of two parts or more: `/somas approve` and URLs (`//host/...`) are no paths.
_POSIX_PATH = re.compile(rf"(?<![\w.~:/\\-])(?:~|/{_PATH_PART})(?:/{_PATH_PART})+/?")
_WINDOWS_PATH = re.compile(rf"(?<![\w])[A-Za-z]:\\(?:{_PATH_PART}\\)+{_PATH_PART}?")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~{}])")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
_ISSUE_REF = re.compile(r"#(?=[0-9])")
_SCHEME = re.compile(r"(?i)([a-z][a-z0-9+.-]*):(?=//)")
_WWW = re.compile(r"(?i)\b(www)\.")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
ZERO_WIDTH = "\u200b"
ELLIPSIS = " …"


def _last_part(match: re.Match[str]) -> str:
    text = match.group(0)
    separator = "\\" if "\\" in text else "/"
    return "…" + separator + text.rstrip(separator).rsplit(separator, 1)[-1]


def scrub(text: str, limit: int = 1500) -> str:
    """Untrusted text with invisible characters, paths and marker openers removed, bounded."""
    cleaned = _INVISIBLE.sub("", str(text).replace("\r\n", "\n").replace("\r", "\n"))
    cleaned = _WINDOWS_PATH.sub(_last_part, _POSIX_PATH.sub(_last_part, cleaned))
    cleaned = cleaned.replace("<!--", "<! --")
    return cleaned if len(cleaned) <= limit else cleaned[:limit].rstrip() + ELLIPSIS


def _longest_backtick_run(text: str) -> int:
    runs = re.findall(r"`+", text)
    return max((len(run) for run in runs), default=0)


def code_block(text: str, limit: int = 1500) -> str:
    """Untrusted text as a fenced code block that nothing inside it can close."""
    body = scrub(text, limit)
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    return f"{fence}text\n{body}\n{fence}"


def code_span(text: str, limit: int = 300) -> str:
    """Untrusted text as one inline code span (newlines become spaces)."""
    body = " ".join(scrub(text, limit).split())
    if not body:
        return "`(empty)`"
    fence = "`" * (_longest_backtick_run(body) + 1)
    if body.startswith("`") or body.endswith("`"):
        body = f" {body} "  # CommonMark strips one space on each side, keeping the backtick
    return f"{fence}{body}{fence}"


def table_cell(text: str, limit: int = 300) -> str:
    """A code span safe inside a Markdown table row (GitHub splits cells at any bare `|`)."""
    return code_span(text, limit).replace("|", "\\|")


def prose(text: str, limit: int = 4000) -> str:
    """Untrusted text as readable Markdown text: escaped, no mentions, references or links."""
    body = _MARKDOWN_SPECIAL.sub(r"\\\1", scrub(text, limit))
    body = _MENTION.sub("@" + ZERO_WIDTH, body)
    body = _ISSUE_REF.sub("#" + ZERO_WIDTH, body)
    body = _SCHEME.sub(lambda m: m.group(1) + ":" + ZERO_WIDTH, body)
    return _WWW.sub(lambda m: m.group(1) + ZERO_WIDTH + ".", body)


def title(text: str, limit: int = 200) -> str:
    """An issue or pull-request title: one line, invisible characters and paths removed."""
    return " ".join(scrub(text, limit).split())


def mention(login: str) -> str:
    """`@login` for a well-formed GitHub login (to notify its owner), else the login as code."""
    return f"@{login}" if _LOGIN.match(login) else code_span(login, 60)
