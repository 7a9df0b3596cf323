# Entry points. README.md explains each; .ci/run calls `make test` on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOSTS ?= 3
VARIANTS ?=

.PHONY: help venv lint test unit-test lab-test lab-up lab-status lab-down demo bench-lab tools

help:
	@echo "make test         lint, unit tests and lab integration tests (needs root and the lab's packages)"
	@echo "make demo         bring up the local lab (3 hosts) and show it"
	@echo "make lab-up       HOSTS=N [VARIANTS=mail2=iredmail-1.5]: create or converge the lab"
	@echo "make lab-status   one line per lab host"
	@echo "make lab-down     remove everything the lab made"
	@echo "make bench-lab    time lab-up for 1, 5, 10 and 20 hosts and print memory per host"
	@echo "make tools        build the Pulumi engine from Go modules (blocked: see README)"

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .

unit-test: venv
	$(VENV)/bin/pytest -m "not lab"

lab-test: venv
	$(VENV)/bin/pytest -m lab

test: lint
	$(VENV)/bin/pytest

lab-up: venv
	$(PY) -m lab up --hosts "$(HOSTS)" --variants "$(VARIANTS)"

lab-status: venv
	$(PY) -m lab status

lab-down: venv
	$(PY) -m lab down

demo: venv
	$(PY) -m lab up --hosts "$(HOSTS)" --variants "$(VARIANTS)"
	$(PY) -m lab status
	@echo
	@echo "The lab stays up. Try: $(PY) -m lab exec mail1 -- postconf -M"
	@echo "Take it down with: make lab-down"

bench-lab: venv
	$(PY) -m tests.bench_lab

tools:
	tools/build-engine.sh
