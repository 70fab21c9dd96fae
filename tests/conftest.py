"""Guards that keep every test local, and the fixtures the scenarios build on."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from somas_action.cli.crash_log import CRASH_DIR_ENV
from somas_action.core.clock import FakeClock
from tests import scenarios

if TYPE_CHECKING:
    from tests.fakes.github_server import FakeGitHub

_SECRETS = ("GITHUB_TOKEN", "GH_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture(autouse=True)
def _isolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """No real GitHub, AI provider, runner files or home directory can be reached from a test.

    Crash logs go to the test's own `tmp_path/crash-logs` (made only when something crashes),
    never into the machine's temp dir, for child processes too.
    """
    for name in list(os.environ):
        if name.startswith("GITHUB_") or name in _SECRETS or name.startswith("RUNNER_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("SOMAS_ACTOR", "local:tester")
    monkeypatch.setenv(CRASH_DIR_ENV, str(tmp_path / scenarios.CRASH_LOGS))
    real_connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise RuntimeError(f"test tried to reach {host}: tests talk only to 127.0.0.1")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@pytest.fixture
def clock() -> FakeClock:
    """A clock that never sleeps for real."""
    return FakeClock()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with the default `.somas/` committed on main."""
    return scenarios.make_repo(tmp_path / "repo")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """A fake GitHub on 127.0.0.1; the test fails if anything departed from GitHub's contract."""
    from tests.fakes.github_server import FakeGitHub

    fake = FakeGitHub().start()
    yield fake
    fake.stop()
    assert fake.violations == [], "\n".join(fake.violations[:20])
