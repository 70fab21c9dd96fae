"""Where the error boundary writes the traceback of an unexpected error: `somas-crash-*.log`."""

from __future__ import annotations

import os
from collections.abc import Mapping

# The folder for crash logs; unset or empty means the system temp dir (`$TMPDIR`, /tmp).
CRASH_DIR_ENV = "SOMAS_CRASH_DIR"


def crash_dir(environ: Mapping[str, str]) -> str | None:
    """The configured crash-log folder, or None for the system temp dir."""
    return environ.get(CRASH_DIR_ENV) or None


def write_crash_log(environ: Mapping[str, str] = os.environ) -> str:
    """Write the exception being handled to a new `somas-crash-*.log`; return its path.

    A folder that cannot be used (unwritable, a file in the way) falls back to the system temp
    dir: the crash log must never become a second crash.
    """
    folder = crash_dir(environ)
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
            return _write(folder)
        except OSError:
            pass
    return _write(None)


def _write(folder: str | None) -> str:
    # Imported here: only a crash needs them, and every command start would pay for tempfile.
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile(
        "w", prefix="somas-crash-", suffix=".log", delete=False, dir=folder
    ) as log:
        traceback.print_exc(file=log)
    return log.name
