"""compose.yaml publishes only the public entry point on every interface (the gateway's API port); the
operator UIs (Grafana, Prometheus, RabbitMQ, the mail catcher's) listen on 127.0.0.1 only, and auth (which
trusts X-Client-Address), SMTP and every metrics port are not published at all."""
from __future__ import annotations

import ipaddress

import yaml

from tests.deploy.conftest import ROOT

PUBLIC = {("gateway", 8080)}  # (service, container port) reachable from other machines
LOOPBACK_ONLY = {"grafana", "prometheus", "rabbitmq", "mailpit"}  # operator tools: this machine only
UNPUBLISHED_PORTS = {("auth", 5000), ("mailpit", 1025),  # auth's API, SMTP
                     ("converter", 9100), ("notification", 9101), ("gateway", 9102), ("auth", 9103)}  # metrics


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def published(spec) -> tuple[str, int]:
    """(host address, container port) of one `ports` entry, short or long syntax."""
    if isinstance(spec, dict):
        return spec.get("host_ip", "0.0.0.0"), int(str(spec["target"]).split("/")[0])
    parts = str(spec).split("/")[0].rsplit(":", 2)
    host_ip = parts[0].strip("[]") if len(parts) == 3 else "0.0.0.0"
    return host_ip, int(parts[-1].split("-")[0])


def bindings() -> list[tuple[str, str, int]]:
    return [(name, *published(spec)) for name, service in compose()["services"].items()
            for spec in service.get("ports", [])]


def loopback(host_ip: str) -> bool:
    return ipaddress.ip_address(host_ip).is_loopback


def test_only_the_gateway_is_published_on_every_interface():
    assert all("network_mode" not in service for service in compose()["services"].values())  # host: all open
    open_to_all = {(name, port) for name, host_ip, port in bindings() if not loopback(host_ip)}
    assert open_to_all == PUBLIC


def test_operator_tools_listen_on_loopback_only():
    for name, host_ip, port in bindings():
        if (name, port) not in PUBLIC:
            assert name in LOOPBACK_ONLY and loopback(host_ip), (name, host_ip, port)


def test_auth_smtp_and_metrics_ports_are_not_published():
    assert UNPUBLISHED_PORTS.isdisjoint({(name, port) for name, _, port in bindings()})
