"""The gateway's memory limit covers what its settings let it hold in every overlay: the uploads and
downloads in progress, the connections being read, the baseline (README "Sizing the gateway's memory")."""
from __future__ import annotations

import pytest

from services.gateway.places import memory_needed_mib

from .conftest import OVERLAYS, deployment_settings, memory_limit_mib


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_memory_limit_covers_its_settings(build, overlay):
    container, settings = deployment_settings(build.docs(f"kustomize/overlays/{overlay}"), "gateway")
    assert settings["GUNICORN_WORKERS"] == "1"  # the formula is per process; one process per pod
    needed = memory_needed_mib(settings)
    assert needed <= memory_limit_mib(container), (overlay, needed)


def test_the_formula_with_the_base_settings():
    # baseline + 128 uploads x 4 MiB + 64 downloads x 1 MiB + (204 threads + 1024) connections x 112 KiB
    assert memory_needed_mib({"UPLOADS_MAX": "128"}) == 160 + 128 * 4 + 64 * 1 + 135
