# The two commands a new user needs (see README.md):
#   make demo   - set up everything, bring up the local lab and run the demo
#   make test   - set up everything and run the whole test suite (lint, types, tests)
.PHONY: bootstrap demo test lint

VENV := .venv
PY := $(VENV)/bin/python

bootstrap:
	bash scripts/bootstrap.sh

lint: bootstrap
	$(VENV)/bin/ruff check reconciler tests bench
	$(VENV)/bin/ruff format --check reconciler tests bench
	$(VENV)/bin/mypy

demo: bootstrap
	bash scripts/demo.sh

test: lint
	$(PY) -m pytest
