"""The capacity model (loadtest/capacity_model.py) reads what the built manifests hold, in the shapes
its arithmetic understands: the prod KEDA ScaledObject (the default), the optional adapter HPA and
the scale-to-zero variant; and the committed figures (loadtest/capacity/figures.json) were made
with the settings committed now, which the KEDA component's README quotes."""
from __future__ import annotations

import json
import re

# loadtest/ is on pytest's pythonpath (pyproject.toml)
import capacity_hpa as hpa
import pytest
from capacity_model import KINDS, inputs, scaler_docs

from .conftest import ROOT

FIGURES = ROOT / "loadtest" / "capacity" / "figures.json"
KEDA_README = ROOT / "kustomize" / "components" / "converter-keda" / "README.md"


@pytest.fixture(scope="module")
def docs(build, workdir):
    zero = workdir / "kustomize" / "overlays" / "prod-zero"  # as the model builds it
    zero.mkdir(exist_ok=True)
    (zero / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../prod]\ncomponents: [../../components/converter-keda-scale-to-zero]\n")
    return scaler_docs({"prod": build.docs("kustomize/overlays/prod"),
                        "prod-zero": build.docs("kustomize/overlays/prod-zero"),
                        "adapter": build.docs("kustomize/tests/converter-hpa-prometheus-adapter")})


def test_prod_keda_scaledobject_is_what_the_model_reads(docs):
    keda = hpa.keda_from_scaledobject(docs["keda"])
    spec = keda.hpa.spec
    assert keda.unacked, "the default trigger counts ready + unacked (protocol http)"
    assert keda.min_count >= 2 and spec.min_replicas == keda.min_count, "scale to zero is off in prod"
    assert spec.max_replicas > spec.min_replicas and spec.target > 0 and keda.polling_s > 0
    for rules in (spec.up, spec.down):
        assert rules.select in ("Max", "Min", "Disabled") and rules.policies
        assert all(p.type in ("Pods", "Percent") and p.value > 0 and p.period_s > 0 for p in rules.policies)


def test_alternatives_are_what_the_model_reads(docs):
    adapter = hpa.spec_from_hpa(docs["hpa"])
    default = hpa.keda_from_scaledobject(docs["keda"]).hpa.spec
    assert (adapter.target, adapter.up, adapter.down) == (default.target, default.up, default.down)
    zero = hpa.keda_from_scaledobject(docs["keda-zero"])
    assert zero.min_count == 0 and zero.unacked and zero.cooldown_s > 0 and zero.hpa.spec.min_replicas == 1
    assert not hpa.keda_from_scaledobject(docs["keda-zero-amqp"]).unacked


def test_committed_figures_were_made_with_the_committed_settings(docs):
    """Change the ScaledObject (or the adapter HPA) and this fails until `make capacity` is re-run."""
    recorded = json.loads(FIGURES.read_text())["inputs"]
    for kind in KINDS:
        made = hpa.keda_from_scaledobject(docs[kind]) if docs[kind]["kind"] == "ScaledObject" \
            else hpa.HPA(hpa.spec_from_hpa(docs[kind]))
        assert recorded[kind] == json.loads(json.dumps(inputs(made))), f"{kind}: re-run `make capacity`"


def test_keda_readme_quotes_the_committed_settings_and_figures(docs):
    """The component's README and the model's summary say the same: settings and measured figures."""
    text = re.sub(r"\s+", " ", KEDA_README.read_text())
    keda = hpa.keda_from_scaledobject(docs["keda-zero"])
    assert f"`pollingInterval`, {keda.polling_s:.0f} s" in text
    assert f"`cooldownPeriod` ({keda.cooldown_s:.0f} s)" in text
    prod = hpa.keda_from_scaledobject(docs["keda"])
    assert f"prod patches {prod.min_count}-{prod.hpa.spec.max_replicas}" in text
    runs = json.loads(FIGURES.read_text())["runs"]
    quoted = (("daily", "keda-zero-amqp"), ("daily", "keda"), ("quiet-day", "keda-zero"), ("quiet-day", "keda"))
    for trace, kind in quoted:
        p95 = f"{runs[trace][kind]['p95_s']:.1f} s"
        assert p95 in text, f"README lacks the {trace} p95 of {kind}: {p95}"
