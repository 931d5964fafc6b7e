# CPN — two commands: `make demo` (set up + main job) and `make test` (set up + tests).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# `make lint SETUP=` skips the set-up step (.ci/run sets up once, then runs each check)
SETUP ?= setup

.PHONY: setup demo test lint typecheck bench clean

setup:
	@bash scripts/bootstrap.sh

demo: $(SETUP)
	@$(PY) -m labs.demo

test: $(SETUP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - that is a failure here"; exit 1; fi; \
	exit $$rc

lint: $(SETUP)
	@$(VENV)/bin/ruff check .

typecheck: $(SETUP)
	@$(VENV)/bin/mypy controller telemetry optical srv6 dns_compute scheduler labs

bench: $(SETUP)
	@$(VENV)/bin/cpn bench store

clean:
	rm -rf var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
