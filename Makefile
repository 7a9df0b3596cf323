# Entry points. README.md explains each; .ci/run calls `make test` on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The lab calls sshd, firewalld, postfix and ip by name; a login shell of a non-root user may lack the sbin folders.
export PATH := $(PATH):/usr/local/sbin:/usr/sbin:/sbin
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOSTS ?= 3
VARIANTS ?=

.PHONY: help system-deps venv lint test unit-test lab-test lab-up lab-status lab-down demo bench-lab bench-smtps tools

help:
	@echo "make test         install what is missing, then lint, unit tests and lab integration tests (as root)"
	@echo "make demo         bring up the local lab (3 hosts) and show it"
	@echo "make lab-up       HOSTS=N [VARIANTS=mail2=iredmail-1.5]: create or converge the lab"
	@echo "make lab-status   one line per lab host"
	@echo "make lab-down     remove everything the lab made"
	@echo "make bench-lab    time lab-up for 1, 5, 10 and 20 hosts and print memory per host"
	@echo "make bench-smtps  time the host-side scripts (converge, no-op, destroy) on HOSTS lab hosts"
	@echo "make tools        build the Pulumi engine from Go modules (blocked: see README)"

system-deps:
	tools/install-system-deps.sh

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .

unit-test: venv
	$(VENV)/bin/pytest -m "not lab"

lab-test: system-deps venv
	$(VENV)/bin/pytest -m lab

test: system-deps lint
	$(VENV)/bin/pytest

lab-up: system-deps venv
	$(PY) -m lab up --hosts "$(HOSTS)" --variants "$(VARIANTS)"

lab-status: venv
	$(PY) -m lab status

lab-down: venv
	$(PY) -m lab down

demo: system-deps venv
	$(PY) -m lab up --hosts "$(HOSTS)" --variants "$(VARIANTS)"
	$(PY) -m lab status
	@echo
	@echo "The lab stays up. Try: $(PY) -m lab exec mail1 -- postconf -M"
	@echo "Take it down with: make lab-down"

bench-lab: system-deps venv
	$(PY) -m tests.bench_lab

bench-smtps: system-deps venv
	$(PY) -m tests.bench_smtps "$(HOSTS)"

tools:
	tools/build-engine.sh
