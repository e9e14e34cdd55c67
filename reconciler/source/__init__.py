"""Sources of desired state: the `volctl apply` spec store and a git repository."""
