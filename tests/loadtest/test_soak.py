"""The soak in short (`make soak` runs it for 20 minutes): 2.5 minutes of Locust users, hostile clients,
SIGKILLed services, one RabbitMQ and one MongoDB stand-in restart on a private stack, then the same
invariants as the long run, judged from the stored state (loadtest/soak_verdicts.py)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINUTES = 2.5
BUDGET_SECONDS = 330  # start-up (~30 s), the load, settling (~20 s) and the report


@pytest.mark.timeout(BUDGET_SECONDS + 60)
def test_soak_keeps_every_invariant(tmp_path):
    if importlib.util.find_spec("locust") is None:
        pytest.fail("locust is not installed: make deps (requirements/tools.lock)")
    out = tmp_path / "soak"
    done = subprocess.run([sys.executable, "loadtest/soak.py", "--minutes", str(MINUTES), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=BUDGET_SECONDS)
    tail = (done.stdout + done.stderr)[-4000:]
    # the stack prints its services' logs last: the soak's own traceback is before them
    start = done.stderr.rfind("Traceback (most recent call last)")
    cause = done.stderr[start:][:4000] if start >= 0 else ""
    assert (out / "figures.json").exists(), f"the soak did not finish (exit {done.returncode}):\n{cause}\n...\n{tail}"
    result = json.loads((out / "figures.json").read_text())
    report = (out / "report.md").read_text()
    failed = [name for name, ok in result["verdicts"].items() if not ok]
    assert not failed, f"failed invariants: {failed}\n{report}"
    assert done.returncode == 0, tail
    figures = result["figures"]
    assert figures["accepted_normal"] >= 20, f"too little load to judge:\n{report}"
    errors = [f for f in result["faults"] if str(f.get("outcome", "")).startswith("error")]
    assert not errors, f"faults not applied or not recovered from: {errors}\n{report}"
    applied = [f["action"] for f in result["faults"]]
    assert {"restart rabbitmq", "restart mongodb"} <= set(applied), f"faults not applied:\n{report}"
    assert any(a.startswith("kill") for a in applied), f"no process killed:\n{report}"
