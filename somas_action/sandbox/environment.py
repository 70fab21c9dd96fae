"""The environment repository code gets: an explicit allowlist, never a secret.

SOMAS's own process holds the workflow token and the AI keys; none of them, no git credential
setting and no Actions runtime token may reach code from the repository or an agent. Values of
secret-looking variables are also redacted from everything a sandboxed run returns, in case a
weaker isolation let code read them some other way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from somas_action.core.secrets import check_allowlist, is_secret_name

BASE_NAMES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
"""Passed through from SOMAS's environment when set (PATH filtered, see `sandbox_path`)."""

REDACTED = "***"
_MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words


def sandbox_environment(
    parent: Mapping[str, str],
    allow: Sequence[str],
    fixed: Mapping[str, str],
    hidden: Sequence[Path],
) -> dict[str, str]:
    """BASE_NAMES and `allow` from `parent`, PATH without entries under `hidden`, then `fixed`."""
    check_allowlist(allow, "validation.env")
    env = {name: parent[name] for name in (*BASE_NAMES, *allow) if name in parent}
    env["PATH"] = sandbox_path(parent.get("PATH", os.defpath), hidden)
    env.update(fixed)
    return env


def sandbox_path(path: str, hidden: Sequence[Path]) -> str:
    """`path` without entries inside a hidden folder (SOMAS's venv, $HOME itself …)."""
    kept = [entry for entry in path.split(os.pathsep) if entry and not _inside(entry, hidden)]
    return os.pathsep.join(dict.fromkeys(kept))


def _inside(entry: str, hidden: Sequence[Path]) -> bool:
    resolved = Path(entry).resolve()
    return any(resolved == h or h in resolved.parents for h in hidden)


def secret_values(parent: Mapping[str, str]) -> tuple[str, ...]:
    """Values of the secret-looking variables of `parent`, longest first (for `redact`)."""
    values = {v for k, v in parent.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_CHARS}
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret value replaced by `***`."""
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
