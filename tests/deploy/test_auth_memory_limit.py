"""auth's memory limit follows from its settings in every overlay: ARGON2_MAX_CONCURRENT hashes of
ARGON2_MEMORY_KIB each, plus the worker's baseline and a margin (README "Password hashing")."""
from __future__ import annotations

import pytest

from services.auth.hashing import memory_limit_mib

from .conftest import OVERLAYS, find

UNITS_MIB = {"Mi": 1, "Gi": 1024}


def _mib(quantity: str) -> float:
    for suffix, factor in UNITS_MIB.items():
        if quantity.endswith(suffix):
            return float(quantity[:-len(suffix)]) * factor
    raise AssertionError(f"write auth's memory limit in Mi or Gi, not {quantity!r}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_memory_limit_is_the_formula_of_its_settings(build, overlay):
    docs = build.docs(f"kustomize/overlays/{overlay}")
    (container,) = find(docs, "Deployment", "auth")["spec"]["template"]["spec"]["containers"]
    settings = {}
    for ref in container["envFrom"]:
        settings.update(find(docs, "ConfigMap", ref["configMapRef"]["name"])["data"])
    assert settings["GUNICORN_WORKERS"] == "1"  # the formula is per process; one process per pod
    needed = memory_limit_mib(int(settings["ARGON2_MAX_CONCURRENT"]), int(settings["ARGON2_MEMORY_KIB"]))
    assert _mib(container["resources"]["limits"]["memory"]) == needed, (overlay, needed)
