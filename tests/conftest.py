"""Guards that keep every test local, and the fixtures the scenarios build on."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from somas_action.cli.crash_log import CRASH_DIR_ENV
from somas_action.core.clock import FakeClock
from somas_action.core.domain import Event
from somas_action.pipeline.runner import Runner
from somas_action.state.eventlog import EventLog, Tail
from tests import scenarios, tiers

if TYPE_CHECKING:
    from tests.fakes.github_server import FakeGitHub

# Session fixtures of the validation tests (sandbox, base-run cache, offline wheels).
pytest_plugins = ["tests.repo_fixtures"]
# The fixture repositories' own suites run inside the sandbox, never in ours.
collect_ignore = ["fixtures"]

_SECRETS = ("GITHUB_TOKEN", "GH_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
_PASSED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Watch the child processes tests start, for the tier check."""
    tiers.install()


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--fast`: the fast tier (`make test-fast`)."""
    parser.addoption(
        "--fast",
        action="store_true",
        help=f"leave out the tests marked {', '.join(tiers.SLOW_MARKERS)} (see tests/tiers.py)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `fakes` the tests that ask for the fake GitHub; with `--fast`, leave out slow tiers."""
    for item in items:
        if "github" in getattr(item, "fixturenames", ()):
            item.add_marker(tiers.FAKES)
    if config.getoption("--fast"):
        fast: list[pytest.Item] = []
        slow: list[pytest.Item] = []
        for item in items:
            (slow if tiers.is_slow(item.iter_markers()) else fast).append(item)
        config.hook.pytest_deselected(items=slow)
        items[:] = fast


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself passed (the tier check reads it at teardown)."""
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


@pytest.fixture(autouse=True)
def _tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test whose markers do not match what it did (see tests/tiers.py)."""
    tiers.begin(request.node.nodeid, (mark.name for mark in request.node.iter_markers()))
    # Plain wrappers, not mocker spies: this runs around every test, and a spy costs ~2 ms.
    real_advance, real_append = Runner.advance, EventLog.append

    def advance(self: Runner, *args: Any, **kwargs: Any) -> Any:
        tiers.note_advance()
        return real_advance(self, *args, **kwargs)

    def append(self: EventLog, *args: Any, **kwargs: Any) -> tuple[list[Event], Tail]:
        written, tail = real_append(self, *args, **kwargs)
        tiers.note_written(event["event_type"] for event in written)
        return written, tail

    monkeypatch.setattr(Runner, "advance", advance)
    monkeypatch.setattr(EventLog, "append", append)
    try:
        yield
    finally:
        # A test that failed or skipped may have stopped before doing what its marks say.
        problems = tiers.end(check_unused=request.node.stash.get(_PASSED, False))
    if problems:
        pytest.fail(f"wrong tier: {'; '.join(problems)} (see tests/tiers.py)", pytrace=False)


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
def somas_folder(tmp_path: Path) -> Path:
    """The default `.somas/` in a plain folder: for tests that read config and agents only."""
    return scenarios.make_folder(tmp_path / "repo")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """A fake GitHub on 127.0.0.1; the test fails if anything departed from GitHub's contract."""
    from tests.fakes.github_server import FakeGitHub

    fake = FakeGitHub().start()
    yield fake
    fake.stop()
    assert fake.violations == [], "\n".join(fake.violations[:20])
