"""`python -m somas_action` runs the `somas` command line."""

from __future__ import annotations

from somas_action.cli.main import main

raise SystemExit(main())
