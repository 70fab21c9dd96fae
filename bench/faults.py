"""`make faults`: the fault experiments of issues 13 and 16 at full size, with their figures.

    .venv/bin/python bench/faults.py                 # the current checkout
    .venv/bin/python bench/faults.py --code /path    # another checkout (e.g. the "before" commit)
    .venv/bin/python bench/faults.py --only kills,torn --kill-limit 40

Prints one table row per experiment (trials, trials with a violation, violations by kind) and a
last line `FAULTS-JSON {...}` with every figure. The experiments and invariants are in
tests/faults/ (the bounded form runs in `make test`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults import experiments as ex  # noqa: E402
from tests.faults.harness import Somas, Trial, summarize  # noqa: E402

ALL = ("kills", "torn", "middle", "tamper", "corrupt", "enospc", "readonly", "clock", "signals")


def run(name: str, lab: ex.Lab, args: argparse.Namespace, rng: random.Random) -> list[Trial]:
    """One experiment at the sizes asked for."""
    if name == "kills":
        return ex.run_kills(lab, args.kill_limit, args.random_kills)
    if name == "torn":
        return ex.torn_batch_trials(lab, every=args.torn_every)
    if name == "middle":
        return ex.middle_cut_trials(lab, args.middle, rng)
    if name == "tamper":
        return ex.tamper_trials(lab, args.tamper, rng)
    if name == "corrupt":
        return ex.corrupt_trials(lab)
    if name in ("enospc", "readonly"):
        why = ex.can_mount()
        if why:
            print(f"  {name}: skipped: {why}")
            return []
        if name == "readonly":
            return [ex.timed("readonly", ex.readonly_trial, lab)]
        step = max(args.enospc_max // max(args.enospc_levels - 1, 1), 1)
        return ex.enospc_trials(lab, [i * step for i in range(args.enospc_levels)])
    if name == "clock":
        return ex.clock_trials(lab)
    return ex.signal_trials(lab, args.signals)


def main() -> int:
    """Run the experiments, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="SOMAS checkout under test")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated experiments")
    parser.add_argument("--kill-limit", type=int, default=None, help="kill points (default all)")
    parser.add_argument("--random-kills", type=int, default=60)
    parser.add_argument("--torn-every", type=int, default=1, help="every Nth byte of the batch")
    parser.add_argument("--middle", type=int, default=60)
    parser.add_argument("--tamper", type=int, default=8, help="lines per kind of tampering")
    parser.add_argument("--enospc-levels", type=int, default=40)
    parser.add_argument("--enospc-max", type=int, default=1_200_000, help="largest free bytes")
    parser.add_argument("--signals", type=int, default=6, help="trials per kind of signal pair")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    somas = Somas(args.code)
    rng = random.Random(args.seed)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="somas-faults-") as tmp:
        lab = ex.Lab(somas, Path(tmp))
        print(f"fault experiments on {somas.code}")
        print(f"{'experiment':<10} {'trials':>6} {'violating':>9} {'violations':>10} {'s':>7}")
        for name in [n for n in args.only.split(",") if n]:
            started = time.monotonic()
            trials = run(name, lab, args, rng)
            summary = summarize(trials)
            summary["seconds"] = round(time.monotonic() - started, 1)
            figures[name] = summary
            print(
                f"{name:<10} {summary['trials']:>6} {summary['violating_trials']:>9} "
                f"{summary['violations']:>10} {summary['seconds']:>7}",
                flush=True,
            )
            for kind, count in list(summary["kinds"].items())[:6]:
                print(f"    {count:>5} x {kind}")
            examples = [t for t in trials if t.violations][:2]
            for trial in examples:
                print(f"    e.g. {trial.name}: {trial.violations[0][:120]}")
    print("FAULTS-JSON " + json.dumps({"code": str(somas.code), "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
