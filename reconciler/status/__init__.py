"""Status: what the controller knows, kept in memory and published as immutable snapshots."""
