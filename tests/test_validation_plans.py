"""Which commands set up and test a repository: configured, or detected per language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from somas_action.core.errors import ConfigError
from somas_action.core.settings import ValidationSettings
from somas_action.validation.plans import DETECTED_JUNIT, plan_for
from tests.repo_fixtures import settings


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A folder with `files`."""
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


PYPROJECT = (
    '[project]\nname = "x"\nversion = "1.0"\n'
    '[project.optional-dependencies]\ntests = ["pytest-mock"]\n'
)


def test_a_python_project_gets_a_venv_with_its_test_extra_and_pytest(tmp_path: Path) -> None:
    plan = plan_for(tree(tmp_path, {"pyproject.toml": PYPROJECT}), settings())

    assert plan is not None
    assert (plan.runner, plan.dialect, plan.python_venv, plan.decided_by) == (
        "pytest", "pytest", True, "pyproject.toml",
    )  # fmt: skip
    [setup] = plan.setup
    assert setup.endswith(
        "install --disable-pip-version-check --no-input --no-compile -e '.[tests]' pytest"
    )
    assert '"$py" -m venv --without-pip "$VIRTUAL_ENV"' in setup
    assert "--continue-on-collection-errors" in plan.command
    assert "-o faulthandler_timeout=300" in plan.command
    assert plan.junit == DETECTED_JUNIT


def test_python_without_a_package_installs_its_requirements(tmp_path: Path) -> None:
    files = {
        "requirements.txt": "requests\n",
        "requirements-dev.txt": "pytest\n",
        "tests/test_a.py": "",
    }

    plan = plan_for(tree(tmp_path, files), settings())

    assert plan is not None and plan.decided_by == "test_*.py files"
    assert plan.setup[0].endswith("-r requirements.txt -r requirements-dev.txt pytest")


def test_node_uses_its_test_script_or_node_test(tmp_path: Path) -> None:
    scripted = {
        "package.json": json.dumps({"scripts": {"test": "vitest run"}}),
        "package-lock.json": "{}",
    }
    plan = plan_for(tree(tmp_path / "a", scripted), settings())
    assert plan is not None
    assert (plan.runner, plan.setup, plan.command) == (
        "npm test",
        ("npm ci --no-audit --no-fund",),
        "npm test",
    )

    placeholder = {
        "package.json": json.dumps(
            {"scripts": {"test": 'echo "Error: no test specified" && exit 1'}}
        )
    }
    plan = plan_for(tree(tmp_path / "b", placeholder), settings(per_test_timeout_seconds=5))
    assert plan is not None
    assert plan.runner == "node --test"
    assert plan.setup == ()
    assert "--test-timeout=5000" in plan.command
    assert plan.junit == DETECTED_JUNIT


def test_rust_go_and_make(tmp_path: Path) -> None:
    cargo = plan_for(tree(tmp_path / "r", {"Cargo.toml": "[package]\n"}), settings())
    assert cargo is not None
    assert (cargo.setup, cargo.build, cargo.command) == (
        ("cargo fetch",), ("cargo test --offline --no-run",), "cargo test --offline --no-fail-fast",
    )  # fmt: skip
    go = plan_for(tree(tmp_path / "g", {"go.mod": "module x\n"}), settings())
    assert go is not None and (go.runner, go.command) == ("go test", "go test -v ./...")
    make = plan_for(
        tree(tmp_path / "m", {"Makefile": "all:\n\ttrue\ntest: all\n\t./t\n"}), settings()
    )
    assert make is not None and make.command == "make test"
    assert plan_for(tree(tmp_path / "n", {"Makefile": "all:\n\ttrue\n"}), settings()) is None


def test_configured_commands_win_and_keep_the_detected_dialect(tmp_path: Path) -> None:
    folder = tree(tmp_path, {"pyproject.toml": PYPROJECT})

    plan = plan_for(folder, settings(command="tox -e py", junit="reports/junit.xml"))

    assert plan is not None
    assert (plan.runner, plan.command, plan.junit, plan.setup, plan.dialect) == (
        "command", "tox -e py", "reports/junit.xml", (), "pytest",
    )  # fmt: skip
    mixed = plan_for(folder, settings(setup=["pip install -e ."]))
    assert mixed is not None
    assert (mixed.runner, mixed.setup) == ("pytest", ("pip install -e .",))
    assert mixed.decided_by == "pyproject.toml, validation.setup"


def test_settings_refuse_a_secret_in_the_allowlist() -> None:
    with pytest.raises(ConfigError, match=r"validation\.env: OPENAI_API_KEY looks like a secret"):
        settings(env=["OPENAI_API_KEY"])
    assert settings(env=["NODE_OPTIONS"]).env == ("NODE_OPTIONS",)
    assert isinstance(settings(), ValidationSettings)
