"""Install a pinned engine into SOMAS's own tool folder (never globally), once per version.

npm engines go into `<tools>/<engine>-<version>` with `npm install --prefix`; PyPI engines into
a virtualenv there. A stamp file written last marks a finished install; a folder without it is
an interrupted install and is started again. Installs get the network but none of the run's
secrets: an npm postinstall script is code from the registry.

Command line (the Makefile uses it): `python -m somas_action.providers.engines.install
ENGINE VERSION --tools-dir DIR` prints the executable, the install time and size as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from somas_action.core.errors import ConfigError, SomasError, WorkspaceError
from somas_action.providers.engines.catalog import ENGINES
from somas_action.providers.engines.spec import check_pinned

STAMP = ".somas-installed.json"
# What an installer may see of our environment: where to find tools and the registries.
_INSTALL_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "npm_config_registry",
)  # fmt: skip


@dataclass(frozen=True)
class InstalledEngine:
    """A ready engine: its executable, and what installing it cost (seconds None: cached)."""

    engine: str
    version: str
    folder: Path
    executable: Path
    install_seconds: float | None
    size_bytes: int


def tool_folder(tools_dir: Path, engine: str, version: str) -> Path:
    """Where `engine` at `version` lives."""
    return tools_dir / f"{engine}-{version}"


def find_installed(tools_dir: Path, engine: str, version: str) -> InstalledEngine | None:
    """The finished install of `engine` at `version`, or None."""
    folder = tool_folder(tools_dir, engine, version)
    stamp = folder / STAMP
    if not stamp.is_file():
        return None
    recorded = json.loads(stamp.read_text())
    return InstalledEngine(
        engine=engine,
        version=version,
        folder=folder,
        executable=folder / ENGINES[engine].binary,
        install_seconds=None,
        size_bytes=int(recorded["size_bytes"]),
    )


def install_engine(engine: str, version: str, tools_dir: Path) -> InstalledEngine:
    """Install `engine` at exactly `version` unless it already is; raise WorkspaceError."""
    kind = ENGINES.get(engine)
    if kind is None or not kind.registry:
        known = ", ".join(n for n, k in ENGINES.items() if k.registry)
        raise ConfigError(f"engine {engine!r} is not one SOMAS installs (it installs {known})")
    check_pinned(version, f"install {engine}")
    found = find_installed(tools_dir, engine, version)
    if found is not None:
        return found
    folder = tool_folder(tools_dir, engine, version)
    shutil.rmtree(folder, ignore_errors=True)  # an interrupted install leaves no stamp
    folder.mkdir(parents=True)
    started = time.monotonic()
    for argv in _commands(kind.registry, kind.package, version, folder):
        _run(argv, engine, version)
    executable = folder / kind.binary
    if not executable.exists():
        raise WorkspaceError(f"installing {engine} {version} left no {kind.binary} in {folder}")
    size = folder_size(folder)
    stamp = {"engine": engine, "version": version, "size_bytes": size}
    (folder / STAMP).write_text(json.dumps(stamp))
    seconds = round(time.monotonic() - started, 1)
    return InstalledEngine(engine, version, folder, executable, seconds, size)


def _commands(registry: str, package: str, version: str, folder: Path) -> list[list[str]]:
    if registry == "npm":
        npm = ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
        return [[*npm, "--loglevel=error", f"{package}@{version}"]]
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    return [
        [sys.executable, "-m", "venv", str(folder)],
        [*pip, "--disable-pip-version-check", f"{package}=={version}"],
    ]


def _run(argv: Sequence[str], engine: str, version: str) -> None:
    env = {name: os.environ[name] for name in _INSTALL_ENV if name in os.environ}
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise WorkspaceError(
            f"installing {engine} {version} needs {argv[0]!r}, which is not on PATH"
        ) from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise WorkspaceError(
            f"installing {engine} {version} failed ({argv[0]} exit {result.returncode}): "
            f"{lines[-1] if lines else 'no output'}"
        )


def folder_size(folder: Path) -> int:
    """Bytes on disk of the files under `folder`: links not followed, hard links counted once."""
    sizes: dict[tuple[int, int], int] = {}
    for path in folder.rglob("*"):
        info = path.lstat()
        if path.is_file() and not path.is_symlink():
            sizes[(info.st_dev, info.st_ino)] = info.st_size
    return sum(sizes.values())


def main(argv: Sequence[str] | None = None) -> int:
    """Install one engine and print what it cost as JSON; 1 with one line on failure."""
    parser = argparse.ArgumentParser(prog="python -m somas_action.providers.engines.install")
    parser.add_argument("engine", choices=[n for n, k in ENGINES.items() if k.registry])
    parser.add_argument("version")
    parser.add_argument("--tools-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        installed = install_engine(args.engine, args.version, args.tools_dir)
    except SomasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    figures = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(installed).items()}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
