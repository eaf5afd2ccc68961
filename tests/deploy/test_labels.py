"""The Kubernetes recommended labels on every object of every overlay and build combination, the
release's version among them, and none of the changing ones in an immutable field."""
from __future__ import annotations

import pytest

from .conftest import pod_specs, project_version
from .test_kustomize_build import TARGETS

RECOMMENDED = [f"app.kubernetes.io/{k}" for k in ("name", "instance", "version", "component", "part-of", "managed-by")]
# values that change between releases or installations: a selector or a volumeClaimTemplate holding
# one could never be updated (both are immutable), so an upgrade would be refused
CHANGING = {"app.kubernetes.io/version", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"}


def _missing(labels: dict | None) -> list[str]:
    return [k for k in RECOMMENDED if not (labels or {}).get(k)]


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_and_pod_has_the_recommended_labels(build, target):
    release = project_version()
    instance = f"vid2mp3-{target.rsplit('/', 1)[-1]}" if "/overlays/" in target else "vid2mp3"
    wrong = []
    for d in build.docs(target):
        labels = d["metadata"].get("labels") or {}
        name = f"{d['kind']}/{d['metadata']['name']}"
        if _missing(labels):
            wrong.append(f"{name}: no {_missing(labels)}")
            continue
        fixed = {"app.kubernetes.io/version": release, "app.kubernetes.io/part-of": "vid2mp3",
                 "app.kubernetes.io/managed-by": "kustomize", "app.kubernetes.io/instance": instance}
        wrong += [f"{name}: {k}={labels[k]!r}, not {v!r}" for k, v in fixed.items() if labels[k] != v]
    for workload, _spec in pod_specs(build.docs(target)):
        spec = workload["spec"]
        templates = [spec["jobTemplate"], spec["jobTemplate"]["spec"]["template"]] if "jobTemplate" in spec \
            else [spec["template"]]
        for template in templates:
            if _missing(template["metadata"].get("labels")):
                wrong.append(f"pod template of {workload['kind']}/{workload['metadata']['name']}: "
                             f"no {_missing(template['metadata'].get('labels'))}")
    assert not wrong, "\n".join(wrong)


def _selectors(d: dict):
    spec = d.get("spec") or {}
    if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "PodDisruptionBudget"):
        yield spec["selector"].get("matchLabels", {})
    if d["kind"] == "Service":
        yield spec.get("selector") or {}
    if d["kind"] == "NetworkPolicy":
        yield spec["podSelector"].get("matchLabels", {})
    for claim in spec.get("volumeClaimTemplates", []) if d["kind"] == "StatefulSet" else []:
        yield claim["metadata"].get("labels", {})


@pytest.mark.parametrize("target", TARGETS)
def test_no_changing_label_in_a_selector_or_claim_template(build, target):
    bad = [f"{d['kind']}/{d['metadata']['name']}: {sorted(CHANGING & set(sel))}"
           for d in build.docs(target) for sel in _selectors(d) if CHANGING & set(sel)]
    assert not bad, "\n".join(bad)
    # workloads select their pods by name alone, as before these labels: selectors stay as they were
    for d in build.docs(target):
        if d["kind"] in ("Deployment", "StatefulSet"):
            assert set(d["spec"]["selector"]["matchLabels"]) == {"app.kubernetes.io/name"}, d["metadata"]["name"]
