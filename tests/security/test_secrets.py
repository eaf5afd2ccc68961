"""A user's password and token appear in no log file, no /metrics output, no error body, no span."""
from __future__ import annotations

import time

import requests

from devkit.client import Client
from devkit.media import make_media


def test_password_and_token_never_leak(stack, tmp_path):
    password = "Zq-secret-" + str(time.time_ns())
    user = Client(stack["gateway"], password=password).signed_up()
    gw, token = stack["gateway"], user.token
    bodies = []
    # Everything a user (or an attacker holding the password) might do, including failures.
    bodies.append(requests.post(f"{gw}/login", auth=(user.email, password + "x"), timeout=10).text)
    bodies.append(requests.post(f"{gw}/login", auth=("bad@" + password, password), timeout=10).text)
    bodies.append(requests.post(f"{gw}/register", json={"email": user.email, "password": password}, timeout=10).text)
    bodies.append(requests.post(f"{gw}/register", json={"email": password, "password": password}, timeout=10).text)
    bodies.append(requests.post(f"{gw}/upload", headers={"Authorization": f"Bearer {token}x"}, timeout=10).text)
    bodies.append(requests.post(f"{gw}/upload", headers=user.auth, data=b"x", timeout=10).text)
    bodies.append(requests.get(f"{gw}/jobs/{'1' * 24}", headers=user.auth, timeout=10).text)
    # (Query strings are recorded in spans as http.target, like in any access log: credentials go in
    # headers and bodies only, which is what the API asks for.)
    bodies.append(requests.get(f"{gw}/download", params={"fid": "nope"}, headers=user.auth, timeout=10).text)
    bodies.append(requests.post(f"{gw}/validate", headers=user.auth, timeout=10).text)
    job_id = user.upload(make_media(tmp_path / "v.mp4", seconds=1)).json()["job_id"]
    user.wait_job(job_id, 60)
    time.sleep(1)
    outputs = {f"body {i}": body for i, body in enumerate(bodies)}
    for name, base in stack["metrics"].items():
        outputs[f"{name} /metrics"] = requests.get(f"{base}/metrics", timeout=10).text
    for path in stack["logs"].glob("*.log"):
        outputs[str(path)] = path.read_text(errors="replace")
    with stack["otlp"].lock:
        outputs["spans"] = repr(stack["otlp"].spans)
    token_body = token.split(".")[2]  # the signature is what makes a token usable
    leaks = [name for name, text in outputs.items() if password in text or token in text or token_body in text]
    where = {name: [text[max(0, i - 150):i + 40] for i in [text.find(password), text.find(token_body)] if i >= 0]
             for name, text in outputs.items() if name in leaks}
    assert not leaks, f"secret found in: {where}"
    assert len(outputs) > 8
