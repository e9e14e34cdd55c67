"""The `volctl` command line."""
