"""The `somas` command line."""
