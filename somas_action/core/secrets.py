"""Which environment variable names may carry a credential: never passed to repository code."""

from __future__ import annotations

import re
from collections.abc import Iterable

from somas_action.core.errors import ConfigError

_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|_KEY$|_AUTH|AUTH_|"
    r"^ACTIONS_|^GIT_|^GH_|^SSH_|^AWS_|^AZURE_|^GOOGLE_|^NPM_CONFIG__|^TWINE_|^PYPI_",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True for a variable that may carry a credential (GITHUB_TOKEN, *_API_KEY, GIT_*, …)."""
    return bool(_SECRET_NAME.search(name))


def check_allowlist(names: Iterable[str], where: str) -> tuple[str, ...]:
    """The allowlisted names, or a ConfigError naming the first secret one."""
    for name in names:
        if is_secret_name(name):
            raise ConfigError(
                f"{where}: {name} looks like a secret and is never passed to repository code; "
                "remove it (see docs/sandbox.md)"
            )
    return tuple(names)
