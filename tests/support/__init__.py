"""Support shared by the test suites and the benchmarks (loadtest/bench.py): free ports and HTTP
readiness (net), an OTLP/HTTP trace receiver (otlp), and an isolated local stack (stack).

Plain modules, no pytest fixtures, so the bench imports them as well as the tests. They live under
tests/ because they are test tooling: the service images never contain tests/ (.dockerignore lets
in only pyproject.toml, requirements.lock and services/), whereas services/ is what images ship.
"""
