# The two commands a new user needs (see README.md):
#   make demo   - set up everything, bring up the local lab and run the demo
#   make test   - set up everything and run the whole test suite (lint, types, tests)
.PHONY: bootstrap demo test lint lab-image

VENV := .venv
PY := $(VENV)/bin/python

bootstrap:
	bash scripts/bootstrap.sh

lint: bootstrap
	$(VENV)/bin/ruff check reconciler tests bench reliability
	$(VENV)/bin/ruff format --check reconciler tests bench reliability
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

demo: bootstrap
	bash scripts/demo.sh

# the lab's guest image (Debian kernel + tiny init) is built once and cached, so no test's
# timeout pays for it
lab-image: bootstrap
	$(VENV)/bin/volctl lab prepare

# branch coverage of the reconciler package, printed per module after the tests (volctl processes
# that tests start as subprocesses are not measured)
test: lint lab-image
	$(PY) -m pytest --cov=reconciler --cov-branch --cov-report=term
