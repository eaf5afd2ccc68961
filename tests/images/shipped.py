"""What the images and manifests ship, read from the files themselves: the Dockerfile's ENV and CMD of
a service's stages, and the environment Kubernetes gives its container (the ConfigMaps of
`envFrom`, the Secret keys of `env`, with the values of the dev secrets example)."""
from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import yaml

from devkit.stack import ROOT

SERVICES = ("auth", "gateway", "converter", "notification", "janitor")
# ARG defaults of the Dockerfile (VERSION is pyproject's: tests/deploy/test_version.py) and the
# environment of the base image (python:3.11-slim-bookworm)
BUILD_ARGS = {"VERSION": tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"],
              "GIT_SHA": "unknown"}
BASE_IMAGE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
IMAGE_VENV = "/opt/venv"
SECRETS_EXAMPLE = ROOT / "kustomize" / "overlays" / "dev" / "secrets.env.example"


def _instructions() -> list[tuple[str, str, str]]:
    """(stage, instruction, arguments) of every Dockerfile line, continuations joined."""
    joined, stage, found = "", "", []
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not joined and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        word, _, args = (joined + line).partition(" ")
        joined = ""
        if word.upper() == "FROM":
            stage = args.split()[-1]
        found.append((stage, word.upper(), args.strip()))
    return found


def image_env(service: str, venv: Path) -> dict[str, str]:
    """The environment of `service`'s image, its venv at `venv` instead of /opt/venv."""
    values = {**BASE_IMAGE_ENV, **BUILD_ARGS, "SERVICE": service}
    env = dict(BASE_IMAGE_ENV)
    for stage, word, args in _instructions():
        if word == "ENV" and stage in ("runtime", service):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                for name, known in {**values, **env}.items():
                    value = value.replace("${%s}" % name, known).replace("$" + name, known)
                env[key] = value.replace(IMAGE_VENV, str(venv))
    return env


def image_command(service: str) -> list[str]:
    """The CMD of `service`'s stage (exec form)."""
    commands = [args for stage, word, args in _instructions() if word == "CMD" and stage == service]
    return yaml.safe_load(commands[-1])


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize's `envs` reads them (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def _config_maps() -> dict[str, Path]:
    """Name of every generated ConfigMap of k8s/ -> its env file."""
    found = {}
    for kustomization in (ROOT / "k8s").glob("*/kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("configMapGenerator", []):
            for env_file in generator.get("envs", []):
                found[generator["name"]] = kustomization.parent / env_file
    return found


def _container(service: str) -> dict:
    """The container spec of `service` in k8s/ (Deployment, or the janitor's CronJob)."""
    manifest = "cronjob.yaml" if service == "janitor" else "deployment.yaml"
    spec = yaml.safe_load((ROOT / "k8s" / service / manifest).read_text())["spec"]
    pod = spec["jobTemplate"]["spec"]["template"] if service == "janitor" else spec["template"]
    return pod["spec"]["containers"][0]


def k8s_env(service: str, secrets: dict[str, str]) -> dict[str, str]:
    """The variables Kubernetes sets in `service`'s container: ConfigMaps of envFrom, then `env`
    (Secret keys from `secrets`; an optional key missing there is left out, as Kubernetes does)."""
    container, maps, env = _container(service), _config_maps(), {}
    for source in container.get("envFrom", []):
        env.update(read_env_file(maps[source["configMapRef"]["name"]]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref["key"] in secrets or not ref.get("optional"):
            env[item["name"]] = secrets[ref["key"]]
    return env
