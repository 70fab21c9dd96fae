"""Composition: building runners for a repository and the GitHub event flow."""
