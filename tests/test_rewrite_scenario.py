"""The scenario of issue 10, on a small real-shaped module: a rewrite from memory is caught.

The issue asks for a three-line change to one function of `rates.py`. The implementer rewrites
the whole module from memory (it drops `transfer` and rounds with floats), and the validator
names only its own new test. Validation runs the repository's whole suite on the base and on
the branch: the regressions are listed (the suite's module no longer imports, every test in it
is missing, and the changed rounding fails), the gate fails whatever the validator said, and
the debugger gets the regressions, the change and the files they point at. Its fix passes;
the reviewer then sees the diff and a clean verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from somas_action.core.clock import FakeClock
from somas_action.core.ports import AgentRequest
from tests import scenarios
from tests.scenarios import log_of, state_of

pytestmark = [pytest.mark.e2e, pytest.mark.subprocess]
MODULE = "src/ledgerkit/rates.py"
RATES = '''"""Interest and fee rules of a small ledger."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Account:
    """An account's balance and its yearly interest rate in percent."""

    balance: Decimal
    rate_percent: Decimal


def to_cents(amount: Decimal) -> Decimal:
    """`amount` rounded to cents, half to even (banker's rounding)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def monthly_interest(account: Account) -> Decimal:
    """A month's interest: a twelfth of the yearly rate, nothing on a balance at or below 0."""
    if account.balance <= 0:
        return ZERO
    return to_cents(account.balance * account.rate_percent / 100 / 12)


def overdraft_fee(account: Account, fee: Decimal = Decimal("25.00")) -> Decimal:
    """The fee charged when the balance is below zero."""
    if account.balance >= 0:
        return ZERO
    return fee


def apply_month(account: Account) -> Account:
    """The account after one month: interest added, or the overdraft fee taken."""
    change = monthly_interest(account) - overdraft_fee(account)
    return Account(to_cents(account.balance + change), account.rate_percent)


def transfer(source: Account, target: Account, amount: Decimal) -> tuple[Account, Account]:
    """Move `amount` from `source` to `target`; a transfer must move a positive amount."""
    if amount <= 0:
        raise ValueError("a transfer moves a positive amount")
    return (
        Account(to_cents(source.balance - amount), source.rate_percent),
        Account(to_cents(target.balance + amount), target.rate_percent),
    )
'''
SUITE = """import unittest
from decimal import Decimal as D

from ledgerkit.rates import Account, apply_month, monthly_interest, overdraft_fee, to_cents
from ledgerkit.rates import transfer


class RatesTest(unittest.TestCase):
    def test_cents_round_half_to_even(self):
        self.assertEqual(to_cents(D("0.125")), D("0.12"))
        self.assertEqual(to_cents(D("0.135")), D("0.14"))

    def test_interest_is_a_twelfth_of_the_yearly_rate(self):
        self.assertEqual(monthly_interest(Account(D("1200.00"), D("5"))), D("5.00"))

    def test_no_interest_at_or_below_zero(self):
        self.assertEqual(monthly_interest(Account(D("-10.00"), D("5"))), D("0.00"))

    def test_the_fee_is_charged_below_zero_only(self):
        self.assertEqual(overdraft_fee(Account(D("0.00"), D("1"))), D("0.00"))
        self.assertEqual(overdraft_fee(Account(D("-100.00"), D("1"))), D("25.00"))

    def test_a_month_adds_interest_or_takes_the_fee(self):
        self.assertEqual(apply_month(Account(D("1200.00"), D("5"))).balance, D("1205.00"))
        self.assertEqual(apply_month(Account(D("-100.00"), D("5"))).balance, D("-125.00"))

    def test_a_transfer_moves_the_amount(self):
        source, target = transfer(Account(D("10.00"), D("1")), Account(D("0.00"), D("1")), D("4"))
        self.assertEqual((source.balance, target.balance), (D("6.00"), D("4.00")))

    def test_a_transfer_must_be_positive(self):
        with self.assertRaises(ValueError):
            transfer(Account(D("1"), D("1")), Account(D("1"), D("1")), D("0"))
"""
NEW_TEST = """import unittest
from decimal import Decimal as D

from ledgerkit.rates import Account, overdraft_fee


class FeeCapTest(unittest.TestCase):
    def test_the_fee_never_exceeds_the_overdrawn_amount(self):
        self.assertEqual(overdraft_fee(Account(D("-10.00"), D("1"))), D("10.00"))
"""
FIXED = RATES.replace(
    """    if account.balance >= 0:
        return ZERO
    return fee
""",
    """    if account.balance >= 0:
        return ZERO
    # Never more than the account is overdrawn by.
    return min(fee, -account.balance)
""",
)
# What a model writes from memory: transfer is gone, rounding is float-based, the fee is capped.
FROM_MEMORY = '''"""Interest and fee rules."""

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Account:
    balance: Decimal
    rate_percent: Decimal


def to_cents(amount):
    return Decimal(str(round(float(amount), 2)))


def monthly_interest(account):
    if account.balance <= 0:
        return Decimal("0.00")
    return to_cents(account.balance * account.rate_percent / 100 / 12)


def overdraft_fee(account, fee=Decimal("25.00")):
    if account.balance >= 0:
        return Decimal("0.00")
    return min(fee, -account.balance)


def apply_month(account):
    change = monthly_interest(account) - overdraft_fee(account)
    return Account(to_cents(account.balance + change), account.rate_percent)
'''
ISSUE = "overdraft_fee must never charge more than the account is overdrawn by."


def library(repo: Path) -> None:
    """The demo repository with the ledger library and its suite added on main."""
    (repo / "src/ledgerkit").mkdir(parents=True)
    (repo / "src/ledgerkit/__init__.py").write_text('"""A small ledger."""\n')
    (repo / MODULE).write_text(RATES)
    (repo / "tests/test_rates.py").write_text(SUITE)
    scenarios.git(repo, "add", "-A")
    scenarios.git(repo, "commit", "-q", "-m", "ledgerkit")


def reply(summary: str, content: str, tests: bool) -> dict[str, Any]:
    files = [{"path": MODULE, "content": content}]
    if tests:
        files.append({"path": "tests/test_fee_cap.py", "content": NEW_TEST})
    return {"summary": summary, "commit_message": summary, "files": files}


def test_a_rewrite_from_memory_is_caught_the_debugger_gets_the_truth_and_the_reviewer_the_diff(
    repo: Path, tmp_path: Path, clock: FakeClock
) -> None:
    library(repo)
    validator = {"summary": "The new test covers the cap.", "test_paths": ["tests/test_fee_cap.py"]}
    recording = scenarios.make_recording(
        tmp_path / "rec",
        implementation=[{"output": reply("Cap the overdraft fee", FROM_MEMORY, tests=True)}],
        validation=[{"output": validator}],
    )
    fix = reply("Restore transfer and decimal rounding; keep the cap", FIXED, tests=False)
    (recording / "validation.debugger.json").write_text(
        json.dumps({"stage": "validation", "agent": "debugger", "responses": [{"output": fix}]})
    )
    number = scenarios.open_issue(repo, ISSUE, ISSUE)
    run = scenarios.runner(repo, clock, recording)
    run.start(number, "local:tester")

    state, _ = run.advance("project-1", "local:tester")

    # The first validation failed on the regressions, whatever the validator said.
    failed = next(e for e in log_of(repo) if e["event_type"] == "stage_attempt_failed")
    assert failed["stage"] == "validation" and failed["data"]["error"]["kind"] == "quality_gate"
    assert "no_regressions" in failed["data"]["error"]["message"]
    calls: list[AgentRequest] = scenarios.recorded_calls(run)
    debugger = next(c for c in calls if c.agent == "debugger")
    regressions = {r["test"]: r["branch"] for r in debugger.inputs["test_results"]["regressions"]}
    suite = "tests.test_rates.RatesTest"
    assert regressions[f"{suite}.test_a_transfer_moves_the_amount"] == "missing"
    assert regressions[f"{suite}.test_cents_round_half_to_even"] == "missing"
    assert len(regressions) == 7  # every test of the suite module: it no longer imports
    failures = debugger.inputs["test_results"]["failures"]
    assert any("cannot import name 'transfer'" in f["output"] for f in failures)
    assert "-def transfer(" in debugger.inputs["change"]["diff"]
    assert MODULE in {f["path"] for f in debugger.inputs["files"]}
    # The fix passed, and the reviewer saw the change and a clean verdict.
    assert (state["status"], state["current_stage"]) == ("waiting", "review")
    results = json.loads(
        (scenarios.project_dir(repo) / "artifacts" / "test_results.json").read_text()
    )
    assert results["regressions"] == [] and results["failed"] == 0
    assert results["base"]["passed"] == 12 and results["passed"] == 13  # 5 + 7, and the new one
    review = next(c for c in calls if c.stage == "review")
    assert "+    return min(fee, -account.balance)" in review.inputs["change"]["diff"]
    assert review.inputs["test_results"]["verdict"]["passed"] is True
    assert state_of(repo)["metrics"]["debugger_fixes"] == 1
