"""Resilience: the error taxonomy, circuit breakers, classified retries, budgets, parking."""
