# vid2mp3 — the two commands a new user needs: `make up` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up down status test deps loadtest bench soak capacity clean lock

TOOLS_STAMP := $(VENV)/.tools-installed
# Every lock is made by `make lock` (uv, pinned in requirements/tools.in); each is installed hash-checked:
#   requirements.lock          the .venv: every service's dependencies, the test libraries, setuptools
#   requirements/tools.lock    offline validators of the deployment files, Locust, schemathesis, ruff, mypy,
#                              pre-commit, uv
#   requirements/checkov.lock  checkov, in its own venv (.venv-tools): it pins old libraries
#   requirements/<service>.lock  one per service image (Dockerfile), the same versions as requirements.lock
SERVICES := auth gateway converter notification janitor
PIP_LOCKED := pip install -q --require-hashes --no-deps -r

# Virtualenv with the locked dependencies and the project (editable), plus ffmpeg (from Debian when root).
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/$(PIP_LOCKED) requirements.lock
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(TOOLS_STAMP): $(STAMP) requirements/tools.lock requirements/checkov.lock
	$(VENV)/bin/$(PIP_LOCKED) requirements/tools.lock
	test -x .venv-tools/bin/python || python3 -m venv .venv-tools
	.venv-tools/bin/$(PIP_LOCKED) requirements/checkov.lock
	touch $(TOOLS_STAMP)

deps: $(STAMP)
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; \
	  else echo "ffmpeg/ffprobe missing: install them (e.g. apt-get install ffmpeg)"; exit 1; fi; }

up: deps
	$(PY) -m services.devstack up

down:
	$(PY) -m services.devstack down

status:
	$(PY) -m services.devstack status

test: deps $(TOOLS_STAMP)
	$(PY) -m pytest tests

clean: down
	rm -rf .local

# Re-resolve every lock from pyproject.toml and requirements/*.in, with the hashes of every file of
# each pinned release. Versions already locked are kept unless an input needs otherwise; to move
# to newer releases: make lock LOCK_ARGS=--upgrade (or --upgrade-package NAME).
# Python 3.11.0 is the floor: Debian 12 ships 3.11.2, the images 3.11.14.
LOCK = $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --custom-compile-command "make lock" $(LOCK_ARGS)
lock: $(TOOLS_STAMP)
	$(LOCK) pyproject.toml --extra dev requirements/build.in -o requirements.lock
	$(LOCK) requirements/tools.in -c requirements.lock -o requirements/tools.lock
	$(LOCK) requirements/checkov.in -o requirements/checkov.lock
	for s in $(SERVICES); do \
	  $(LOCK) pyproject.toml --extra $$s requirements/build.in -c requirements.lock -o requirements/$$s.lock || exit 1; \
	done

# Load the running stack (make up) with Locust; reports under loadtest/out/<timestamp>/.
loadtest: $(TOOLS_STAMP)
	$(PY) loadtest/run.py --users 10 --spawn-rate 2 --duration 2m --host http://127.0.0.1:$${GATEWAY_PORT:-8080}

# The benchmark suite on its own isolated stack; writes loadtest/BENCHMARKS.md and benchmarks.json.
bench: deps $(TOOLS_STAMP)
	$(PY) loadtest/bench.py

# Load, hostile clients and killed processes at once on a private stack, then every accepted job judged
# against the stored state; report in loadtest/soak/<timestamp>/report.md. SOAK_MINUTES=20 by default.
soak: deps $(TOOLS_STAMP)
	$(PY) loadtest/soak.py --minutes $${SOAK_MINUTES:-20}

# Capacity model of the converter's autoscaler (no cluster, no stack): loadtest/CAPACITY.md
capacity: $(TOOLS_STAMP)
	$(PY) loadtest/capacity_model.py --out loadtest/capacity/
