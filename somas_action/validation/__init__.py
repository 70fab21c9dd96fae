"""The repository's own test suite, run in the sandbox on the base and on the branch.

Layer: above `sandbox/` and `state/` (it exports trees with `state.git`), below `pipeline/`.
"""
