"""Durable state on disk and in git: the event log, project store, state branch, breakers."""
