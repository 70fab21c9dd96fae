"""Runs many `somas` commands in one process for the fault suite's quick trials.

Started as `python tests/faults/driver.py` with PYTHONPATH pointing at the SOMAS checkout under
test; reads a JSON list of command lines on stdin and prints one JSON list of results
(`{"code", "out", "err"}`). Starting one process per trial would cost more than the trial.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback


def run_one(argv: list[str]) -> dict[str, object]:
    """One `somas` command line through the real CLI boundary, its output captured."""
    from somas_action.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    except BaseException:  # escaped the boundary: as bad as exit 3
        err.write(traceback.format_exc())
        code = 3
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}


def main() -> int:
    """Read the command lines, run them in order, print the results."""
    jobs = json.load(sys.stdin)
    print(json.dumps([run_one(argv) for argv in jobs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
