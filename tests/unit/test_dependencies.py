"""Which way the dependencies point, read from the source (tests/images/imports.py): the job contract
needs the standard library only, and nothing the workers or the janitor reach needs the web framework
(tests/images/test_shipped.py imports them in their image venvs too)."""
from __future__ import annotations

import ast

import pytest

from tests.images import imports, shipped
from devkit.stack import ROOT

# The settings and the options a job holds: both need nothing but the standard library themselves.
JOB_CONTRACT = {"services.common", "services.common.jobs", "services.common.config", "services.common.options"}


def test_the_job_contract_needs_the_standard_library_only():
    modules, third_party = imports.needed({"services.common.jobs"})
    assert modules == JOB_CONTRACT and third_party == set()


@pytest.mark.parametrize("name", imports.WITHOUT_WEB)
def test_workers_and_the_janitor_reach_no_web_framework(name):
    modules, third_party = imports.needed(imports.service_roots(name, shipped.image_command(name)))
    assert not set(imports.WEB_FRAMEWORK) & third_party, sorted(third_party)
    assert "services.common.web" not in modules and "services.common.openapi" not in modules


def test_the_converter_reads_top_down():
    """Each step imports only the steps before it: probe, plan, command, encode, conversion."""
    steps = ["probe", "plan", "command", "encode", "conversion"]
    for index, step in enumerate(steps):
        reached, _ = imports.needed({f"services.converter.{step}"})
        later = {f"services.converter.{name}" for name in steps[index + 1:]}
        assert not reached & later, (step, sorted(reached & later))


def test_one_place_publishes_each_message():
    """Outside the messaging package, only messages.py publishes (`video`, `mp3`), and deliveries.py its
    own kind (`webhook`): every other module calls messages.publish_video or messages.publish_finished."""
    publishers = set()
    for path in (ROOT / "services").rglob("*.py"):
        calls = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute) and node.func.attr == "publish"]
        if calls and "messaging" not in path.parts:
            publishers.add(str(path.relative_to(ROOT)))
    assert publishers == {"services/common/messages.py", "services/notification/deliveries.py"}
