# CPN — two commands: `make demo` (set up + main job) and `make test` (set up + tests).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test lint typecheck bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	@$(PY) -m labs.demo

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - that is a failure here"; exit 1; fi; \
	exit $$rc

lint: setup
	@$(VENV)/bin/ruff check .

typecheck: setup
	@$(VENV)/bin/mypy controller telemetry optical srv6 dns_compute scheduler labs

bench: setup
	@$(VENV)/bin/cpn bench store

clean:
	rm -rf var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
