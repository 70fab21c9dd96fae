"""Fixture repositories for the validation tests: copied from tests/fixtures/repos, made into
real git repositories with a `main` base and project branches carrying a change."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from somas_action.core.settings import ValidationSettings
from somas_action.sandbox.isolation import Sandbox, open_sandbox
from tests import scenarios

REPOS = Path(__file__).parent / "fixtures" / "repos"
WHEELHOUSE = Path(__file__).parent.parent / ".cache" / "wheelhouse"
CANARY = "canary-7f3a9c1e5b2d4680"
SECRETS = {
    "GITHUB_TOKEN": f"ghs_{CANARY}",
    "OPENAI_API_KEY": f"sk-{CANARY}",
    "ANTHROPIC_API_KEY": f"sk-ant-{CANARY}",
}
_IDENTITY = ("-c", "user.name=Test", "-c", "user.email=test@example.invalid")


@dataclass(frozen=True)
class FixtureRepo:
    """A fixture copied into a temporary git repository with its files on `main`."""

    path: Path

    def git(self, *args: str) -> str:
        """Run git in the repository."""
        return subprocess.run(
            ["git", "-C", str(self.path), *_IDENTITY, *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def branch(self, name: str, changes: Mapping[str, str | None]) -> str:
        """Commit `changes` (path -> new text, None deletes) on a new branch from main."""
        self.git("checkout", "-q", "-b", name, "main")
        for path, text in changes.items():
            target = self.path / path
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"change on {name}")
        self.git("checkout", "-q", "main")
        return f"refs/heads/{name}"

    def edit(self, path: str, old: str, new: str) -> str:
        """The text of `path` on main with `old` replaced by `new` (which must occur)."""
        text = (self.path / path).read_text()
        assert old in text, f"{old!r} not in {path}"
        return text.replace(old, new)


def make_fixture_repo(name: str, dest: Path) -> FixtureRepo:
    """`tests/fixtures/repos/<name>` as a git repository at `dest`, committed on main."""
    shutil.copytree(REPOS / name, dest)
    repo = FixtureRepo(dest)
    repo.git("init", "-q", "-b", "main")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "base")
    return repo


def settings(**overrides: Any) -> ValidationSettings:
    """ValidationSettings from the config schema's defaults plus `overrides` (schema-checked)."""
    return scenarios.config_section(validation=dict(overrides)).validation


def parent_env(**extra: str) -> dict[str, str]:
    """SOMAS's environment as a workflow step would have it: the secrets included."""
    return {**os.environ, **toolchain_env(), **SECRETS, **extra}


def real_home() -> Path:
    """The user's home from the password database (tests replace $HOME with a temp folder)."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def toolchain_env() -> dict[str, str]:
    """RUSTUP_HOME / PYENV_ROOT of the real home, so the sandbox finds cargo and pyenv's Python
    although the tests' $HOME is a temporary folder."""
    env = {}
    for name, folder in (("RUSTUP_HOME", ".rustup"), ("PYENV_ROOT", ".pyenv")):
        path = Path(os.environ.get(name) or real_home() / folder)
        if path.is_dir():
            env[name] = str(path)
    return env


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The strongest sandbox this machine allows, probed once."""
    return open_sandbox("auto")


@pytest.fixture(scope="session")
def base_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One base-run cache for the session: every test of a fixture shares its base tree."""
    return tmp_path_factory.mktemp("base-cache")


@pytest.fixture(scope="session")
def python_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An offline wheelhouse: pytest and setuptools (`make wheelhouse`) plus the fixture's own
    test dependency `padkit`, built once here from its plain files."""
    if not any(WHEELHOUSE.glob("pytest-*.whl")):
        pytest.skip(f"no wheels in {WHEELHOUSE}: run `make wheelhouse` (make test does)")
    source = tmp_path_factory.mktemp("padkit-src") / "padkit"
    return build_wheelhouse(tmp_path_factory.mktemp("wheels"), source)


def build_wheelhouse(out: Path, source: Path) -> Path:
    """Fill `out` with the wheelhouse's wheels and a wheel of the fixture's `padkit`, built
    offline from a copy of its plain files at `source` (which must not exist)."""
    for wheel in WHEELHOUSE.glob("*.whl"):
        shutil.copy(wheel, out)
    shutil.copytree(REPOS / "python_pkg" / "vendor" / "padkit", source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-index",
            "--find-links",
            str(WHEELHOUSE),
            "--no-deps",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return out
