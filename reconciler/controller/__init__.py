"""The controller: the level-based loop that fetches, observes, plans, executes and reports."""
