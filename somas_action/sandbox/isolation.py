"""Choose the strongest isolation that works here, say which, and run commands in it.

`bubblewrap`: namespaces (user, PID, mount, network for tests, IPC, UTS), an allowlisted
filesystem and the allowlisted environment. `process-group`: the fallback when bubblewrap is
missing or refused (Docker's seccomp, Ubuntu 24.04's AppArmor without the profile): only the
scrubbed environment, a fresh `$HOME` and an own session — and the result carries a warning
saying exactly what is not isolated. The choice is made at run time and never silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from somas_action.core.errors import SomasError
from somas_action.core.settings import IsolationMode
from somas_action.sandbox.bubblewrap import bwrap_argv, private_files
from somas_action.sandbox.process import ProcessResult, run_process

IsolationKind = Literal["bubblewrap", "process-group"]
PROBE_TIMEOUT_SECONDS = 20.0
FALLBACK_WARNING = (
    "repository code ran with a scrubbed environment in its own process group only: it could "
    "read any file SOMAS's user can read (SOMAS's install and venv, $HOME, $RUNNER_TEMP), the "
    "environment of other processes of that user under /proc, and reach the network"
)


class SandboxUnavailable(SomasError):
    """`validation.isolation: bubblewrap` was required and bubblewrap does not work here."""


@dataclass(frozen=True)
class SandboxInfo:
    """Which isolation ran the code, and what it could not enforce."""

    kind: IsolationKind
    network_isolated: bool
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """For `test_results.json`'s `sandbox`."""
        return {
            "kind": self.kind,
            "network_isolated": self.network_isolated,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Sandbox:
    """Runs commands with the chosen isolation. `read_only` folders are shown to the command
    (toolchains); `hidden` ones are never put on its PATH (SOMAS's venv, $HOME)."""

    info: SandboxInfo
    bwrap: str | None = None
    read_only: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    masked: tuple[Path, ...] = ()

    def showing(self, folders: Sequence[Path]) -> Sandbox:
        """The same sandbox, also showing `folders` read-only (toolchains)."""
        return replace(self, read_only=tuple(dict.fromkeys([*self.read_only, *folders])))

    def run(
        self,
        command: Sequence[str],
        *,
        workdir: Path,
        writable: Sequence[Path],
        env: Mapping[str, str],
        network: bool,
        log: Path,
        timeout_seconds: float,
        inactivity_seconds: float | None = None,
    ) -> ProcessResult:
        """Run `command` in `workdir` with only `env`; only `writable` folders can be changed."""
        argv = list(command)
        if self.info.kind == "bubblewrap" and self.bwrap is not None:
            argv = bwrap_argv(
                self.bwrap,
                argv,
                workdir=workdir,
                read_only=self.read_only,
                writable=writable,
                network=network,
                masked=self.masked,
            )
        return run_process(
            argv,
            cwd=workdir,
            env=env,
            log=log,
            timeout_seconds=timeout_seconds,
            inactivity_seconds=inactivity_seconds,
        )


def open_sandbox(
    mode: IsolationMode,
    *,
    read_only: Sequence[Path] = (),
    hidden: Sequence[Path] = (),
    bwrap: str | None = None,
) -> Sandbox:
    """The sandbox for `mode`: `auto` tries bubblewrap and falls back with a warning,
    `bubblewrap` raises SandboxUnavailable instead, `process-group` is the weak one on purpose."""
    hidden_paths = tuple(hidden) or default_hidden()
    if mode == "process-group":
        why = "validation.isolation is process-group"
        return _fallback(why, hidden_paths)
    path = bwrap if bwrap is not None else shutil.which("bwrap")
    problem = "bubblewrap (bwrap) is not installed" if path is None else None
    if path is not None:
        problem = probe(path)
    if problem is None and path is not None:
        masked = tuple(private_files()) if os.geteuid() == 0 else ()
        info = SandboxInfo("bubblewrap", True)
        return Sandbox(info, path, tuple(read_only), hidden_paths, masked)
    reason = f"{problem}; see docs/sandbox.md"
    if mode == "bubblewrap":
        raise SandboxUnavailable(f"validation.isolation is bubblewrap but {reason}")
    return _fallback(reason, hidden_paths)


def _fallback(reason: str, hidden: tuple[Path, ...]) -> Sandbox:
    warnings = (f"no sandbox: {reason}", FALLBACK_WARNING)
    return Sandbox(SandboxInfo("process-group", False, warnings), hidden=hidden)


def probe(bwrap: str) -> str | None:
    """None when bwrap can build the full sandbox (with a network namespace) here; else why not,
    with bwrap's own words (e.g. `setting up uid map: Permission denied`)."""
    with tempfile.TemporaryDirectory(prefix="somas-probe-") as tmp:
        scratch = Path(tmp)
        argv = bwrap_argv(
            bwrap,
            ["/bin/sh", "-c", "exit 0"],
            workdir=scratch,
            read_only=(),
            writable=(scratch,),
            network=False,
        )
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                timeout=PROBE_TIMEOUT_SECONDS,
                check=False,
                env={"PATH": os.defpath},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start: {exc}"
    if result.returncode == 0:
        return None
    said = result.stderr.decode(errors="replace").strip().splitlines()
    return f"bubblewrap does not work here: {said[-1] if said else f'exit {result.returncode}'}"


def default_hidden() -> tuple[Path, ...]:
    """Folders whose tools must never be found on a sandboxed PATH: SOMAS's interpreter prefix
    (its venv), the folder SOMAS's package was installed into, and $RUNNER_TEMP. (In bubblewrap
    they are not mounted at all; this keeps them off PATH in the fallback too.)"""
    import somas_action

    paths = [Path(sys.prefix), Path(somas_action.__file__).parent.parent]
    if os.environ.get("RUNNER_TEMP"):
        paths.append(Path(os.environ["RUNNER_TEMP"]))
    return tuple(dict.fromkeys(p.resolve() for p in paths))
