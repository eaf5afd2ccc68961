"""auth's memory limit follows from its settings in every overlay: ARGON2_MAX_CONCURRENT hashes of
ARGON2_MEMORY_KIB each, plus the worker's baseline and a margin (README "Password hashing")."""
from __future__ import annotations

import pytest

from services.auth.hashing import memory_limit_mib as needed_mib

from .conftest import OVERLAYS, deployment_settings, memory_limit_mib


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_memory_limit_is_the_formula_of_its_settings(build, overlay):
    container, settings = deployment_settings(build.docs(f"kustomize/overlays/{overlay}"), "auth")
    assert settings["GUNICORN_WORKERS"] == "1"  # the formula is per process; one process per pod
    needed = needed_mib(int(settings["ARGON2_MAX_CONCURRENT"]), int(settings["ARGON2_MEMORY_KIB"]))
    assert memory_limit_mib(container) == needed, (overlay, needed)
