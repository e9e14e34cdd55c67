"""Execution: run a Plan against the backends, in order, bounded, one Outcome per action."""
