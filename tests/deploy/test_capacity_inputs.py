"""The capacity model (loadtest/capacity_model.py) can read what the built overlays hold: the prod
converter HPA and the KEDA ScaledObject, in the shapes its HPA arithmetic understands."""
from __future__ import annotations

# loadtest/ is on pytest's pythonpath (pyproject.toml)
import capacity_hpa as hpa

from .conftest import find


def test_prod_converter_hpa_is_what_the_model_reads(build):
    spec = hpa.spec_from_hpa(find(build.docs("kustomize/overlays/prod"), "HorizontalPodAutoscaler", "converter"))
    assert spec.min_replicas >= 2 and spec.max_replicas > spec.min_replicas and spec.target > 0
    for rules in (spec.up, spec.down):
        assert rules.select in ("Max", "Min", "Disabled") and rules.policies
        assert all(p.type in ("Pods", "Percent") and p.value > 0 and p.period_s > 0 for p in rules.policies)


def test_keda_scaledobject_is_what_the_model_reads(build):
    keda = hpa.keda_from_scaledobject(find(build.docs("kustomize/tests/keda"), "ScaledObject", "converter"))
    assert keda.min_count == 0 and keda.cooldown_s > 0 and keda.polling_s > 0
    assert keda.hpa.spec.min_replicas == 1 and keda.hpa.spec.target > 0
