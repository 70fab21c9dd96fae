"""Aliases of `somas_action` objects under the names the operations runbook uses."""
