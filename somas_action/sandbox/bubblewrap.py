"""The bubblewrap command line: what a sandboxed command can see.

An allowlist of the filesystem, not a denylist: the system folders read-only (`/usr`, `/etc`,
`/opt`, the `/bin`/`/lib` links), the toolchains on PATH read-only, the scratch folder
read-write, and fresh `/proc` (its own PID namespace: no other process, so no
`/proc/<ppid>/environ`), `/dev` and `/tmp`. Everything else — `$HOME`, `$RUNNER_TEMP`, the
checkout with its `.git/config`, SOMAS's install and venv — does not exist inside.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/etc", "/opt")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SANDBOX_UID = 1000  # inside the user namespace; maps to the caller's own uid outside


def mount_args(
    read_only: Sequence[Path], writable: Sequence[Path], masked: Sequence[Path] = ()
) -> list[str]:
    """bwrap arguments that build the filesystem view; `masked` paths show up empty."""
    args: list[str] = []
    for name in SYSTEM_DIRS:
        if Path(name).is_dir():
            args += ["--ro-bind", name, name]
    for path in masked:
        args += ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
    for name in SYSTEM_LINKS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    args += _resolver_args()
    # fresh /tmp first, so that folders below it can still be shown on top of it
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    for path in _outside_system(read_only):
        args += ["--ro-bind", str(path), str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    return args


def private_files(root: Path = Path("/etc")) -> list[Path]:
    """Entries under `root` that other users may not read (/etc/shadow, /etc/ssl/private …).

    When SOMAS runs as root the sandbox's user is root outside its namespace, and the kernel
    lets an owner read its own 0600 files even without capabilities, so these are masked.
    """
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            if not stat.S_ISLNK(mode) and not mode & stat.S_IROTH:
                found.append(path)
        dirs[:] = [d for d in dirs if Path(folder, d) not in found]
    return found


def _resolver_args() -> list[str]:
    """Ubuntu's /etc/resolv.conf points into /run/systemd/resolve: needed for setup's network."""
    resolv = Path("/etc/resolv.conf")
    if not resolv.is_symlink():
        return []
    target = resolv.resolve().parent
    if str(target).startswith(SYSTEM_DIRS):
        return []
    return ["--ro-bind-try", str(target), str(target)]


def _outside_system(paths: Sequence[Path]) -> list[Path]:
    """Existing folders not already visible through SYSTEM_DIRS, without duplicates."""
    kept: list[Path] = []
    for path in paths:
        if not path.is_dir() or str(path).startswith(tuple(f"{d}/" for d in SYSTEM_DIRS)):
            continue
        if path not in kept:
            kept.append(path)
    return kept


def bwrap_argv(
    bwrap: str,
    command: Sequence[str],
    *,
    workdir: Path,
    read_only: Sequence[Path],
    writable: Sequence[Path],
    network: bool,
    masked: Sequence[Path] = (),
) -> list[str]:
    """The full bwrap invocation running `command` in `workdir`."""
    namespaces = ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID)]
    namespaces += ["--gid", str(SANDBOX_UID)]
    if network:
        namespaces.append("--share-net")
    return [
        bwrap,
        *namespaces,
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        *mount_args(read_only, writable, masked),
        "--chdir",
        str(workdir),
        "--",
        *command,
    ]
