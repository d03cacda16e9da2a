# The two commands a new user needs (see README.md). Both set up what they need, idempotently.
SHELL := /bin/bash
RUN_DATE ?= $(shell date -u +%F)

.PHONY: demo test test-unit test-spark test-e2e test-airflow env clean-warehouse

env:
	@./scripts/env.sh

demo:
	@venv=$$(./scripts/env.sh) && HF_HUB_OFFLINE=1 $$venv/bin/lakerec demo --run-date $(RUN_DATE)

test:
	@venv=$$(./scripts/env.sh) && HF_HUB_OFFLINE=1 $$venv/bin/python -m pytest $(PYTEST_ARGS)

# One tier each (markers assigned in tests/conftest.py); `make test` runs them all.
test-unit test-spark test-e2e test-airflow:
	@venv=$$(./scripts/env.sh) && HF_HUB_OFFLINE=1 $$venv/bin/python -m pytest -m $(@:test-%=%) $(PYTEST_ARGS)

clean-warehouse:
	rm -rf "$${LAKEREC_HOME:-$$HOME/.cache/lakerec}/warehouse"
