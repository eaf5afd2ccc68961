"""The settings table is the single source: README and .env.example must list exactly its names."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.common import config

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_lists_every_setting_with_its_default():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", readme, re.M))
    assert rows == {name: default for name, default, _ in config.SETTINGS}


def test_env_example_lists_every_setting():
    names = re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    assert names == [name for name, _, _ in config.SETTINGS]


def test_code_reads_only_known_settings():
    used = set()
    for path in (ROOT / "services").rglob("*.py"):
        used |= set(re.findall(r"env(?:_int|_float|_bool)?\(\"([A-Z0-9_]+)\"\)", path.read_text()))
    known = {name for name, _, _ in config.SETTINGS}
    assert used and used <= known, used - known


def test_retry_delays_parse(monkeypatch):
    monkeypatch.setenv("RETRY_DELAYS", "1, 2.5,10")
    assert config.retry_delays() == [1.0, 2.5, 10.0]


def test_typed_settings_match_how_the_code_reads_them():
    readers = {"int": {"count"}, "float": {"seconds", "count", "ratio"}, "bool": {"flag"}}
    for path in (ROOT / "services").rglob("*.py"):
        for reader, name in re.findall(r"env_(int|float|bool)\(\"([A-Z0-9_]+)\"\)", path.read_text()):
            assert config.TYPES.get(name) in readers[reader], (path.name, name, config.TYPES.get(name))
    assert set(config.TYPES) <= {name for name, _, _ in config.SETTINGS}


def test_defaults_are_valid():
    config.validate()


@pytest.mark.parametrize("name,value", [("MAX_UPLOAD_BYTES", "2GB"), ("MAX_UPLOAD_BYTES", "-1"),
                                        ("JOB_LEASE_SECONDS", "soon"), ("SMTP_SSL", "maybe"),
                                        ("RETRY_DELAYS", "5,x"), ("AMQP_QUEUE_TYPE", "stream"),
                                        ("OTEL_POLL_SAMPLE_RATIO", "1.5"), ("OTEL_POLL_SAMPLE_RATIO", "-0.1")])
def test_a_bad_value_stops_start_up(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        config.validate()


def test_a_renamed_setting_stops_start_up_and_says_its_new_name(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "9100")
    with pytest.raises(SystemExit, match="METRICS_PORT is now CONVERTER_METRICS_PORT"):
        config.validate()
