"""The vid2mp3 release this code belongs to: pyproject.toml's [project] version, the one number that
/healthz, the OpenAPI documents, build info, the image label and the Kubernetes labels all carry."""
from __future__ import annotations

import functools
import tomllib
from importlib import metadata
from pathlib import Path

# a source checkout: the folder holding the `services` package and pyproject.toml
_SOURCE_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
UNKNOWN = "0+unknown"


@functools.cache
def version() -> str:
    """The source tree's pyproject.toml when the code runs from one (an editable install's metadata
    keeps the version it was installed with), else the installed distribution's metadata (the images
    install the project), else UNKNOWN."""
    if _SOURCE_PYPROJECT.is_file():
        project = tomllib.loads(_SOURCE_PYPROJECT.read_text()).get("project", {})
        if project.get("name") == "vid2mp3" and project.get("version"):
            return str(project["version"])
    try:
        return metadata.version("vid2mp3")
    except metadata.PackageNotFoundError:
        return UNKNOWN
