"""SOMAS Action: a GitHub-native orchestrator for autonomous AI software pipelines."""

from __future__ import annotations

__version__ = "0.1.0"
