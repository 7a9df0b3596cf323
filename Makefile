# Entry points. README.md explains each; .ci/run calls `make test` on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The lab calls sshd, firewalld, postfix and ip by name; a login shell of a non-root user may lack the sbin folders.
export PATH := $(PATH):/usr/local/sbin:/usr/sbin:/sbin:/usr/local/go/bin
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOSTS ?= 3
VARIANTS ?=
BEHIND ?=

.PHONY: help system-deps venv lint test test-full unit-test lab-test lab-up lab-status lab-down demo bench bench-profile bench-scale bench-lab bench-smtps \
	tools example-lab-fleet

help:
	@echo "make test         install what is missing, then lint, unit tests and lab integration tests (as root)"
	@echo "make test-full    the same with the long counts: 100 kill points, 5000 property examples, cases marked full"
	@echo "make demo         bring up the local lab (3 hosts) and turn on SMTPS on it with pulumi up"
	@echo "make example-lab-fleet [STEP=preview|up|destroy]  examples/lab-fleet: lab hosts made by Pulumi, SMTPS on each"
	@echo "make lab-up       HOSTS=N [VARIANTS=mail2=iredmail-1.5] [BEHIND=mail3=mail1]: create or converge the lab"
	@echo "make lab-status   one line per lab host"
	@echo "make lab-down     remove everything the lab made"
	@echo "make bench-lab    time lab-up for 1, 5, 10 and 20 hosts and print memory per host"
	@echo "make bench-smtps  time the host-side scripts (converge, no-op, destroy) on HOSTS lab hosts"
	@echo "make bench        the performance issue's table: converge/no-op/preview/drift on 10 and 50 lab hosts beside pyinfra"
	@echo "                  and the floor, each target met or not [BENCH_SIZES='10 50'] [BENCH_RUNS=1] [BENCH_FIREWALLS=firewalld,nftables]"
	@echo "make bench-profile one host's converge and no-op, step by step: wall and CPU on the host and controller"
	@echo "make bench-scale  converge and no-op on 10, 50, 100 lab hosts [BENCH_SIZES]: growth per host, time split, 500-host"
	@echo "                  extrapolation (100 hosts: two labs, about 5 GiB of memory; docs/benchmark.md)"
	@echo "make tools        build the Pulumi engine from Go modules (cached outside the repo)"

system-deps:
	tools/install-system-deps.sh

# The virtualenv and its packages take nothing from the user's environment, which on a CI runner an earlier job may
# have written: -I (no user site-packages, so no usercustomize.py or .pth of theirs runs, no PYTHON* variables, no
# current folder on sys.path), and pip isolated (no pip.conf of any kind, as PIP_CONFIG_FILE=/dev/null skips even the
# site-wide ones; no PIP_* variables; no cache). The index is PyPI's default, over TLS.
VENV_CREATE := PYTHONNOUSERSITE=1 $(PYTHON) -I -m venv
PIP = PIP_CONFIG_FILE=/dev/null PYTHONNOUSERSITE=1 $(VENV)/bin/python -I -m pip --isolated --no-cache-dir \
	--disable-pip-version-check

$(VENV)/.installed: requirements.txt pyproject.toml
	$(VENV_CREATE) $(VENV)
	$(PIP) install --quiet -r requirements.txt
	# The project itself, editable: the engine's provider processes import it from any folder.
	$(PIP) install --quiet --no-deps -e .
	touch $@

# The project's own modules compiled ahead (only the changed ones, each time): pip compiled every installed package,
# but not an editable project, and where PYTHONDONTWRITEBYTECODE is set Python compiles them again in every process
# it starts: the front end and each provider process (about 0.1 s of CPU each, docs/benchmark.md). Only a saving: in a
# tree that cannot be written (a read-only checkout) each process compiles them, as before.
venv: $(VENV)/.installed
	$(VENV)/bin/python -I -m compileall -q components smtps || \
		echo "make: the project's modules were not compiled ahead (tree not writable?): each process compiles them"

lint: venv tools
	$(VENV)/bin/ruff check .
	.tools/bin/actionlint

unit-test: venv
	$(VENV)/bin/pytest -m "not lab"

lab-test: system-deps venv tools
	$(VENV)/bin/pytest -m lab

# Two processes, each a test file at a time with a lab of its own (tests/lab/labkit.py): most of a lab test is
# waiting on hosts and the engine, so two run in about the time of one and a half.
TEST_WORKERS ?= 2
test: system-deps lint tools
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 -m "not full"

# The long counts of what `make test` runs shorter: 100 kill points, 5000 property-test examples, and the cases
# marked `full` (each also checked another way in `make test`).
test-full: system-deps lint tools
	SMTPS_KILL_POINTS=100 HYPOTHESIS_PROFILE=full $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

lab-up: system-deps venv
	$(PY) -m lab up --hosts "$(HOSTS)" --variants "$(VARIANTS)" --behind "$(BEHIND)"

lab-status: venv
	$(PY) -m lab status

lab-down: venv
	$(PY) -m lab down

# The main job on the local lab: 3 hosts (mail1 like iRedMail 1.4 on the RHEL family, with firewalld; mail2 a Debian
# one, with nftables; mail3 like iRedMail 1.5), the `lab` stack from the lab's inventory, `up` without prompts, then
# a verification table. The lab and the stack stay.
demo: system-deps venv tools
	$(PY) -m lab up --hosts 3 --variants mail2=iredmail-debian,mail3=iredmail-1.5
	$(PY) -m lab stack
	$(PY) -m smtps_iredmail up -s lab --yes
	$(PY) -m smtps_iredmail verify -s lab
	@echo
	@echo "The lab and the stack stay up. Try: $(PY) -m smtps_iredmail preview -s lab --diff, $(PY) -m smtps_iredmail drift -s lab"
	@echo "Undo SMTPS on the hosts: $(PY) -m smtps_iredmail destroy -s lab --yes"
	@echo "Then remove the lab: make lab-down"

# examples/lab-fleet, a Pulumi program of its own: its lab hosts are Pulumi resources, and SMTPS is turned on each
# with the public component. STEP=preview, up (the default) or destroy (which also removes its hosts).
STEP ?= up
example-lab-fleet: system-deps venv tools
	$(PY) -m lab.fleet_example $(STEP)

# pyinfra, the benchmark's bar, in a virtualenv of its own outside the repo (it pins a paramiko older than ours).
PYINFRA_VENV ?= $(HOME)/.cache/smtps-iredmail/pyinfra
$(PYINFRA_VENV)/.installed: requirements-bench.txt
	$(PYTHON) -m venv $(PYINFRA_VENV)
	$(PYINFRA_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench: system-deps venv tools $(PYINFRA_VENV)/.installed
	PYINFRA_VENV=$(PYINFRA_VENV) $(PY) -m bench.bench_pulumi $(BENCH_SIZES)
	$(PY) -m bench.bench_profile

bench-profile: system-deps venv tools
	$(PY) -m bench.bench_profile

bench-scale: system-deps venv tools
	$(PY) -m bench.bench_scale $(BENCH_SIZES)

bench-lab: system-deps venv
	$(PY) -m bench.bench_lab

bench-smtps: system-deps venv
	$(PY) -m bench.bench_smtps "$(HOSTS)"

tools:
	tools/build-engine.sh
	tools/install-actionlint.sh
