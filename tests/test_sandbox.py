"""The sandbox: the environment allowlist, process-group kills, what bubblewrap hides, and the
explicit fallback."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest

from somas_action.core.errors import ConfigError
from somas_action.core.secrets import check_allowlist, is_secret_name
from somas_action.sandbox.environment import (
    redact,
    sandbox_environment,
    secret_values,
)
from somas_action.sandbox.isolation import Sandbox, SandboxUnavailable, open_sandbox
from somas_action.sandbox.process import run_process
from somas_action.sandbox.toolchains import find_toolchains


def test_secret_looking_names_are_never_allowlisted() -> None:
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "SOMAS_GITHUB_TOKEN", "OPENAI_API_KEY",
                 "ANTHROPIC_API_KEY", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL",
                 "GIT_ASKPASS", "GIT_CONFIG_PARAMETERS", "SSH_AUTH_SOCK", "NPM_TOKEN",
                 "AWS_SECRET_ACCESS_KEY", "SIGNING_KEY"):  # fmt: skip
        assert is_secret_name(name), name
    for name in ("PATH", "LANG", "NODE_OPTIONS", "RUST_BACKTRACE", "PYTHONHASHSEED"):
        assert not is_secret_name(name), name
    with pytest.raises(ConfigError) as refused:
        check_allowlist(["NODE_OPTIONS", "GITHUB_TOKEN"], "validation.env")
    assert str(refused.value) == (
        "validation.env: GITHUB_TOKEN looks like a secret and is never passed to repository "
        "code; remove it (see docs/sandbox.md)"
    )


def test_the_environment_has_the_allowlist_and_nothing_else(tmp_path: Path) -> None:
    venv = tmp_path / "somas-venv"
    (venv / "bin").mkdir(parents=True)
    parent = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "GITHUB_TOKEN": "ghs_secret_value",
        "OPENAI_API_KEY": "sk-secret-value",
        "NODE_OPTIONS": "--max-old-space-size=2048",
        "UNRELATED": "x",
    }

    env = sandbox_environment(parent, ["NODE_OPTIONS"], {"HOME": "/scratch/home"}, [venv])

    assert env == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "NODE_OPTIONS": "--max-old-space-size=2048",
        "HOME": "/scratch/home",
    }


def test_secret_values_are_redacted_longest_first() -> None:
    parent = {"GITHUB_TOKEN": "ghs_abcdef", "X_API_KEY": "ghs_abcdef_long", "SHORT_TOKEN": "ab"}
    secrets = secret_values(parent)
    assert secrets == ("ghs_abcdef_long", "ghs_abcdef")
    assert redact("a ghs_abcdef_long b ghs_abcdef ab", secrets) == "a *** b *** ab"


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def wait_gone(pid: int, limit: float = 10.0) -> bool:
    """Whether `pid` is gone within `limit` seconds (a bounded wait, polled)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.subprocess
def test_a_timeout_kills_the_whole_group_and_keeps_the_output(tmp_path: Path) -> None:
    script = "echo started; sleep 600 & echo $! > child.pid; sleep 600"

    result = run_process(
        ["/bin/sh", "-c", script],
        cwd=tmp_path,
        env={"PATH": os.defpath},
        log=tmp_path / "log",
        timeout_seconds=1.0,
    )

    assert result.timed_out == "overall"
    assert result.exit_code is None
    assert result.output == "started\n"
    assert wait_gone(int((tmp_path / "child.pid").read_text()))


@pytest.mark.subprocess
def test_silence_longer_than_the_inactivity_limit_ends_the_run(tmp_path: Path) -> None:
    result = run_process(
        ["/bin/sh", "-c", "echo one; sleep 600"],
        cwd=tmp_path,
        env={"PATH": os.defpath},
        log=tmp_path / "log",
        timeout_seconds=60,
        inactivity_seconds=0.5,
    )

    assert result.timed_out == "inactivity"
    assert result.output == "one\n"


@pytest.mark.subprocess
def test_a_finished_command_leaves_no_process_behind(tmp_path: Path) -> None:
    result = run_process(
        ["/bin/sh", "-c", "sleep 600 & echo $! > child.pid; echo done; exit 3"],
        cwd=tmp_path,
        env={"PATH": os.defpath},
        log=tmp_path / "log",
        timeout_seconds=30,
    )

    assert (result.exit_code, result.output, result.timed_out) == (3, "done\n", None)
    assert wait_gone(int((tmp_path / "child.pid").read_text()))


@pytest.mark.subprocess
def test_a_program_that_cannot_start_is_a_result(tmp_path: Path) -> None:
    result = run_process(
        [str(tmp_path / "missing")],
        cwd=tmp_path,
        env={"PATH": os.defpath},
        log=tmp_path / "log",
        timeout_seconds=5,
    )

    assert result.exit_code == 127
    assert result.output == f"could not start {tmp_path / 'missing'}: No such file or directory\n"


def fake_bwrap(tmp_path: Path, message: str) -> str:
    """A bwrap that fails the way Ubuntu 24.04's AppArmor makes it fail."""
    path = tmp_path / "bwrap"
    path.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.subprocess
def test_a_refused_bubblewrap_falls_back_with_its_reason_in_the_warnings(tmp_path: Path) -> None:
    bwrap = fake_bwrap(tmp_path, "bwrap: setting up uid map: Permission denied")

    sandbox = open_sandbox("auto", bwrap=bwrap)

    assert sandbox.info.kind == "process-group"
    assert sandbox.info.network_isolated is False
    assert sandbox.info.warnings[0] == (
        "no sandbox: bubblewrap does not work here: bwrap: setting up uid map: Permission "
        "denied; see docs/sandbox.md"
    )
    assert "/proc" in sandbox.info.warnings[1]
    with pytest.raises(SandboxUnavailable, match="uid map: Permission denied"):
        open_sandbox("bubblewrap", bwrap=bwrap)


def test_choosing_the_weak_isolation_is_said_too() -> None:
    sandbox = open_sandbox("process-group")
    assert sandbox.info.kind == "process-group"
    assert sandbox.info.warnings[0] == "no sandbox: validation.isolation is process-group"


@pytest.mark.subprocess
def test_the_fallback_still_scrubs_the_environment_and_moves_home(tmp_path: Path) -> None:
    sandbox = open_sandbox("process-group")
    parent = {**os.environ, "GITHUB_TOKEN": "ghs_not_for_tests"}
    env = sandbox_environment(parent, [], {"HOME": str(tmp_path)}, sandbox.hidden)

    result = sandbox.run(
        ["/bin/sh", "-c", 'echo "token=${GITHUB_TOKEN:-none} home=$HOME"'],
        workdir=tmp_path,
        writable=[tmp_path],
        env=env,
        network=False,
        log=tmp_path / "log",
        timeout_seconds=30,
    )

    assert result.output == f"token=none home={tmp_path}\n"


def test_toolchains_under_home_are_shown_but_home_itself_is_not(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".rustup").mkdir(parents=True)
    (home / ".cargo" / "bin").mkdir(parents=True)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    parent = {"HOME": str(home), "PATH": f"{home / '.cargo/bin'}:{venv / 'bin'}:{home}"}

    tools = find_toolchains(parent, [venv])

    assert tools.folders == (home / ".cargo/bin", home / ".rustup")
    assert tools.env == {"RUSTUP_HOME": str(home / ".rustup")}


# -- bubblewrap: what a sandboxed command can see and do --------------------------------------


@pytest.fixture
def bwrap(sandbox: Sandbox) -> Sandbox:
    """The session's sandbox, when it is bubblewrap."""
    if sandbox.info.kind != "bubblewrap":
        pytest.skip(f"bubblewrap does not work here: {sandbox.info.warnings[0]}")
    return sandbox


def inside(sandbox: Sandbox, scratch: Path, script: str, network: bool = False) -> str:
    """Run `script` in the sandbox with `scratch` writable; its output."""
    env = {"PATH": os.defpath, "HOME": str(scratch)}
    result = sandbox.run(
        ["/bin/sh", "-c", script],
        workdir=scratch,
        writable=[scratch],
        env=env,
        network=network,
        log=scratch.parent / f"{scratch.name}.log",
        timeout_seconds=60,
    )
    return result.output


@pytest.mark.subprocess
def test_bubblewrap_shows_only_the_scratch_folder_writable(bwrap: Sandbox, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("nope")

    output = inside(
        bwrap,
        scratch,
        f"cat {secret} 2>/dev/null || echo hidden; touch /usr/x 2>/dev/null || echo read-only; "
        "touch ok && echo writable; id -u",
    )

    assert output.split() == ["hidden", "read-only", "writable", "1000"]


@pytest.mark.subprocess
def test_bubblewrap_has_its_own_pid_namespace(bwrap: Sandbox, tmp_path: Path) -> None:
    script = (
        "ls /proc | grep -c '^[0-9]'; echo $PPID; head -c 200 /proc/$PPID/cmdline | tr '\\0' ' '"
    )

    count, ppid, parent = inside(bwrap, tmp_path, script).split("\n", 2)

    assert int(count) <= 4  # bwrap's init, sh, ls, grep: nothing of the host
    assert ppid == "1"  # the parent SOMAS process and its environ are not in this /proc
    assert parent.startswith(f"{bwrap.bwrap} ")


@pytest.mark.subprocess
def test_bubblewrap_tests_have_no_network_and_setup_does(bwrap: Sandbox, tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    probe = (
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', "
        f"{port}), timeout=3); print('reached')\" 2>/dev/null || echo unreachable"
    )
    try:
        assert inside(bwrap, tmp_path, probe).strip() == "unreachable"
        assert inside(bwrap, tmp_path, probe, network=True).strip() == "reached"
    finally:
        server.close()
