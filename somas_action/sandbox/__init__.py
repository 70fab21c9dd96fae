"""Run repository or agent code (setup, tests, later tool calls) isolated from SOMAS's secrets.

Layer: beside `providers/` and `github/` (an adapter); imports `core/` only.
"""
