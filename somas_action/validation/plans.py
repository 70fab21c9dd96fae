"""Which commands set up and test a repository: from `validation` settings, else detected.

Commands are shell text run with `sh -c` inside the sandbox. They name places through
variables the runner sets, so a plan does not depend on where the scratch folder is:
`$SOMAS_REPORTS` (a folder for reports, outside the tree), `$VIRTUAL_ENV` (Python projects:
a venv in the scratch folder, first on PATH), `$HOME` (a fresh, empty one).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from somas_action.core.settings import ValidationSettings

Dialect = Literal["pytest", "node", "cargo", "go", "generic"]
"""How the runner names tests, so JUnit and console ids agree."""

REPORTS_VAR = "$SOMAS_REPORTS"
DETECTED_JUNIT = f"{REPORTS_VAR}/junit.xml"
_TEST_EXTRAS = ("test", "tests", "testing", "dev")
_REQUIREMENTS = (
    "requirements-test.txt",
    "requirements-tests.txt",
    "test-requirements.txt",
    "requirements-dev.txt",
    "requirements/test.txt",
    "requirements/dev.txt",
)
_NPM_PLACEHOLDER = "no test specified"


@dataclass(frozen=True)
class TestPlan:
    """What to run for one repository, and how to read its results."""

    runner: str
    dialect: Dialect
    setup: tuple[str, ...]
    command: str
    junit: str | None
    python_venv: bool
    decided_by: str
    build: tuple[str, ...] = ()
    """Steps between setup and tests: no network, no per-test timeout (compiling is silent)."""

    def cache_key_parts(self) -> dict[str, Any]:
        """Everything about the plan that changes a run's results."""
        return {
            "runner": self.runner,
            "setup": list(self.setup),
            "build": list(self.build),
            "command": self.command,
            "junit": self.junit,
            "python_venv": self.python_venv,
        }


def plan_for(tree: Path, settings: ValidationSettings) -> TestPlan | None:
    """The plan for `tree`: the configured command, else the first language detected; None
    when there is neither (the caller reports how to set `validation.command`)."""
    detected = detect(tree, settings.per_test_timeout_seconds)
    if settings.command is None:
        if detected is None:
            return None
        if settings.setup is None:
            return detected
        return _replace_setup(detected, settings.setup, "validation.setup")
    return TestPlan(
        runner="command",
        dialect=detected.dialect if detected else "generic",
        setup=settings.setup if settings.setup is not None else (),
        command=settings.command,
        junit=settings.junit,
        python_venv=detected.python_venv if detected else False,
        decided_by="validation.command",
        build=detected.build if detected and settings.setup is None else (),
    )


def _replace_setup(plan: TestPlan, setup: tuple[str, ...], source: str) -> TestPlan:
    return replace(plan, setup=setup, decided_by=f"{plan.decided_by}, {source}")


def detect(tree: Path, per_test_seconds: float) -> TestPlan | None:
    """The first of Rust, Go, Python, Node and `make test` that the tree's files show."""
    for detector in (_cargo, _go, _python, _node, _make):
        plan = detector(tree, per_test_seconds)
        if plan is not None:
            return plan
    return None


def _cargo(tree: Path, _per_test: float) -> TestPlan | None:
    if not (tree / "Cargo.toml").is_file():
        return None
    return TestPlan(
        runner="cargo test",
        dialect="cargo",
        setup=("cargo fetch",),
        command="cargo test --offline --no-fail-fast",
        junit=None,
        python_venv=False,
        decided_by="Cargo.toml",
        build=("cargo test --offline --no-run",),
    )


def _go(tree: Path, _per_test: float) -> TestPlan | None:
    if not (tree / "go.mod").is_file():
        return None
    return TestPlan(
        runner="go test",
        dialect="go",
        setup=("go mod download",),
        command="go test -v ./...",
        junit=None,
        python_venv=False,
        decided_by="go.mod",
        build=("go test -count=1 -run '^$' ./...",),
    )


def _python(tree: Path, per_test: float) -> TestPlan | None:
    marker = next(
        (n for n in ("pyproject.toml", "setup.py", "setup.cfg") if (tree / n).is_file()), None
    )
    if marker is None and not _has_python_tests(tree):
        return None
    command = (
        "python -m pytest -v --tb=short -p no:cacheprovider --continue-on-collection-errors "
        f"-o junit_family=xunit1 -o faulthandler_timeout={int(per_test)} "
        f'--junitxml="{DETECTED_JUNIT}"'
    )
    return TestPlan(
        runner="pytest",
        dialect="pytest",
        setup=(python_setup(shlex.join(_pip_targets(tree, marker))),),
        command=command,
        junit=DETECTED_JUNIT,
        python_venv=True,
        decided_by=marker or "test_*.py files",
    )


def python_setup(install_args: str) -> str:
    """One shell step: a venv at $VIRTUAL_ENV, then `pip install <install_args>` into it.

    The interpreter is resolved first (pyenv's shims would try to rehash their read-only
    folder). The venv gets no pip of its own when the system pip can install into it
    (`pip --python`, pip >= 22.3: about 3 s faster); otherwise ensurepip gives it one.
    """
    return (
        'py=$(python3 -c "import sys; print(sys.executable)") && '
        '"$py" -m venv --without-pip "$VIRTUAL_ENV" && '
        'if "$py" -m pip --python "$VIRTUAL_ENV/bin/python" --version >/dev/null 2>&1; '
        'then set -- "$py" -m pip --python "$VIRTUAL_ENV/bin/python"; '
        'else "$VIRTUAL_ENV/bin/python" -m ensurepip --default-pip >/dev/null && '
        'set -- "$VIRTUAL_ENV/bin/python" -m pip; fi && '
        f'"$@" install --disable-pip-version-check --no-input --no-compile {install_args}'
    )


def _pip_targets(tree: Path, marker: str | None) -> list[str]:
    targets: list[str] = []
    if marker is not None:
        extra = _test_extra(tree) if marker == "pyproject.toml" else None
        targets += ["-e", f".[{extra}]" if extra else "."]
    elif (tree / "requirements.txt").is_file():
        targets += ["-r", "requirements.txt"]
    for name in _REQUIREMENTS:
        if (tree / name).is_file():
            targets += ["-r", name]
            break
    return [*targets, "pytest"]


def _test_extra(tree: Path) -> str | None:
    try:
        data = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    extras = data.get("project", {}).get("optional-dependencies", {})
    return next((name for name in _TEST_EXTRAS if name in extras), None)


def _has_python_tests(tree: Path) -> bool:
    patterns = ("test_*.py", "*_test.py", "tests/test_*.py", "tests/*_test.py")
    return any(any(tree.glob(pattern)) for pattern in patterns)


def _node(tree: Path, per_test: float) -> TestPlan | None:
    manifest = tree / "package.json"
    if not manifest.is_file():
        return None
    data = _json(manifest)
    script = str(data.get("scripts", {}).get("test", "") or "")
    setup: tuple[str, ...] = ()
    if (tree / "package-lock.json").is_file() or (tree / "npm-shrinkwrap.json").is_file():
        setup = ("npm ci --no-audit --no-fund",)
    elif data.get("dependencies") or data.get("devDependencies"):
        setup = ("npm install --no-audit --no-fund",)
    if script and _NPM_PLACEHOLDER not in script:
        return TestPlan("npm test", "node", setup, "npm test", None, False, "package.json")
    command = (
        f"node --test --test-timeout={int(per_test * 1000)} "
        "--test-reporter=tap --test-reporter-destination=stdout "
        f'--test-reporter=junit --test-reporter-destination="{DETECTED_JUNIT}"'
    )
    return TestPlan("node --test", "node", setup, command, DETECTED_JUNIT, False, "package.json")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _make(tree: Path, _per_test: float) -> TestPlan | None:
    for name in ("GNUmakefile", "makefile", "Makefile"):
        path = tree / name
        if path.is_file() and re.search(r"^test\s*:", _text(path), re.MULTILINE):
            return TestPlan("make test", "generic", (), "make test", None, False, name)
    return None


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
