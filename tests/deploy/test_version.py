"""One version, pyproject.toml's [project] version, in every place that carries it outside the Python
code (which reads it at run time: tests/unit/test_release.py): the generated Kustomize files, the
Dockerfile's image label, the release image tags of the overlays and the CHANGELOG."""
from __future__ import annotations

import re
import subprocess
import sys

from .conftest import IMAGES, ROOT, project_version


def test_generated_kustomize_files_are_current():
    """kustomize/labels (the version label) and the PrometheusRules, the Dockerfile ARG and the tags."""
    p = subprocess.run([sys.executable, str(ROOT / "kustomize" / "generate.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_the_version_label_is_the_project_version(build):
    docs = build.docs("kustomize/tests/base-only")
    assert {d["metadata"]["labels"]["app.kubernetes.io/version"] for d in docs} == {project_version()}


def test_the_image_label_defaults_to_the_project_version():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^ARG VERSION=(\S+)$", dockerfile, re.M) == [project_version()]
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile


def test_release_overlays_deploy_the_images_of_this_version(build):
    for overlay in ("staging", "prod"):
        images = [c["image"] for d in build.docs(f"kustomize/overlays/{overlay}")
                  for c in _containers(d) if "/vid2mp3/" in c["image"]]
        assert len(images) == len(IMAGES), images
        assert {image.rsplit(":", 1)[1] for image in images} == {project_version()}, images


def test_the_changelog_has_this_release():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    released = re.findall(r"^## \[(\d[^\]]*)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert released and released[0] == project_version(), released


def _containers(d: dict) -> list[dict]:
    spec = d.get("spec") or {}
    if "jobTemplate" in spec:
        return spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    if "template" in spec and d["kind"] in ("Deployment", "StatefulSet"):
        return spec["template"]["spec"]["containers"]
    return []
