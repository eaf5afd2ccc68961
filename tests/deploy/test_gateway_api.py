"""The public edge: the Gateway API route, its Gateway, the implementations' policies and the Ingress
alternative, as built. The validator itself is proven to refuse broken objects."""
from __future__ import annotations

import copy
import re
from urllib.parse import urlsplit

import pytest

from services.common import config

from .conftest import OVERLAYS, deployment_settings, find, is_gateway_api
from .test_kustomize_build import TARGETS

ROUTE = ("HTTPRoute", "gateway")
# The rate a single-request upload or download must sustain to fit its rule's request timeout: the
# number k8s/gateway/httproute.yaml derives its hour from (2 GiB / 3600 s ≈ 600 kB/s).
EDGE_MIN_TRANSFER_RATE = 600_000  # bytes per second
DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")  # Gateway API (and Envoy Gateway) durations
NGINX_DURATION = re.compile(r"^[0-9]{1,4}(ms|s|m|h)?$")
NGINX_SIZE = re.compile(r"^\d{1,4}(k|m|g)?$")
POLICY_GROUPS = ("gateway.envoyproxy.io/", "gateway.nginx.org/")


def seconds(duration: str) -> float:
    assert DURATION.match(duration), duration
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(n) * unit[u] for n, u in re.findall(r"([0-9]+)(h|ms|m|s)", duration))


def setting(settings: dict[str, str], name: str) -> int:
    return int(settings.get(name, config.default(name)))


def rule_for(route: dict, path: str) -> dict:
    """The rule a request for `path` takes: a matching regular expression, else the longest PathPrefix
    that is a whole-segment prefix of it (the Gateway API's order; implementations rank regular
    expressions above prefixes)."""
    regex, prefixes = [], []
    for rule in route["spec"]["rules"]:
        for m in rule.get("matches", []):
            p = m.get("path", {})
            if p.get("type") == "RegularExpression" and re.fullmatch(p["value"], path):
                regex.append(rule)
            prefix = p.get("value", "").rstrip("/")
            if p.get("type") == "PathPrefix" and (path == prefix or path.startswith(prefix + "/")):
                prefixes.append((len(prefix), rule))
    assert regex or prefixes, f"no rule of the route takes {path}"
    return regex[0] if regex else max(prefixes, key=lambda x: x[0])[1]


# ------------------------------------------------------------------ the validator refuses what it must


@pytest.fixture(scope="module")
def good_route(build) -> dict:
    return find(build.docs("kustomize/tests/base-only"), *ROUTE)


def _broken(route: dict, change) -> dict:
    broken = copy.deepcopy(route)
    change(broken["spec"])
    return broken


BROKEN = {
    "misspelled field": lambda s: s["rules"][0].update(matchez=s["rules"][0].pop("matches")),
    "unknown timeout field": lambda s: s["rules"][1]["timeouts"].update(requests="1h"),
    "bad timeout format": lambda s: s["rules"][1]["timeouts"].update(request="1 hour"),
    "port as a string": lambda s: s["rules"][0]["backendRefs"][0].update(port="8080"),
    "unknown path match type": lambda s: s["rules"][3]["matches"][0]["path"].update(type="Glob"),
    "parent without a name": lambda s: s["parentRefs"][0].pop("name"),
}


def test_validator_accepts_the_route_and_refuses_broken_ones(gateway_api, good_route):
    objects = {"good": good_route} | {name: _broken(good_route, change) for name, change in BROKEN.items()}
    errors = gateway_api.errors(objects)
    assert "good" not in errors, errors.get("good")
    assert set(errors) == set(BROKEN), errors
    assert "matchez" in " ".join(errors["misspelled field"])
    assert "pattern" in " ".join(errors["bad timeout format"])


def test_validator_refuses_a_broken_gateway(gateway_api, build):
    gateway = find(build.docs("kustomize/tests/gateway-api"), "Gateway", "vid2mp3")
    broken = copy.deepcopy(gateway)
    tls = broken["spec"]["listeners"][1]["tls"]
    tls["certificateRef"] = tls.pop("certificateRefs")
    errors = gateway_api.errors({"good": gateway, "broken": broken})
    assert list(errors) == ["broken"], errors


# ------------------------------------------------------------------ the route's timeouts and backends


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_route_timeouts_follow_the_gateway_settings(build, overlay):
    docs = build.docs(f"kustomize/overlays/{overlay}")
    route = find(docs, *ROUTE)
    _, settings = deployment_settings(docs, "gateway")
    for path, limit in (("/upload", "MAX_UPLOAD_BYTES"), ("/uploads", "MAX_UPLOAD_BYTES"),
                        ("/download", "MAX_OUTPUT_BYTES"), ("/links", "MAX_OUTPUT_BYTES")):
        timeouts = rule_for(route, path)["timeouts"]
        needed = setting(settings, limit) / EDGE_MIN_TRANSFER_RATE
        assert seconds(timeouts["request"]) >= needed, (path, limit, timeouts)
        assert seconds(timeouts["backendRequest"]) >= needed, (path, limit, timeouts)
    # a live stream lasts until its job ends: no request timeout
    assert rule_for(route, "/jobs/0123456789abcdef01234567/events")["timeouts"] == {"request": "0s"}
    assert rule_for(route, "/uploads/0123456789abcdef") is rule_for(route, "/upload")
    assert rule_for(route, "/jobs/0123456789abcdef01234567") is rule_for(route, "/") is rule_for(route, "/jobs")
    # a short request: its small body, then at most the wait on auth
    short = rule_for(route, "/")["timeouts"]
    body = setting(settings, "HTTP_BODY_TIMEOUT_SECONDS") + setting(settings, "UPSTREAM_TIMEOUT_SECONDS")
    assert seconds(short["backendRequest"]) >= body
    assert seconds(short["request"]) >= setting(settings, "HTTP_HEADER_TIMEOUT_SECONDS") + body


@pytest.mark.parametrize("target", TARGETS)
def test_routes_are_consistent(build, target):
    """What the Gateway API's CEL rules check at admission (the offline schemas cannot), the route's
    backends (only the gateway Service's API port) and expressions every implementation takes."""
    for route in (d for d in build.docs(target) if d["kind"] == "HTTPRoute"):
        for rule in route["spec"]["rules"]:
            t = rule.get("timeouts", {})
            if "backendRequest" in t and seconds(t.get("request", "0s")) > 0:
                assert seconds(t["backendRequest"]) <= seconds(t["request"]), (route["metadata"]["name"], t)
            for ref in rule.get("backendRefs", []):
                assert (ref["name"], ref["port"]) == ("gateway", 8080), ref
            for m in rule.get("matches", []):
                if m.get("path", {}).get("type") == "RegularExpression":
                    # NGINX Gateway Fabric drops rules whose expression is anchored
                    assert not re.search(r"^\^|\$", m["path"]["value"]), m


# ------------------------------------------------------------------ host, TLS and the Gateway per overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_edge_is_its_own_gateway_with_host_and_tls(build, overlay):
    docs = build.docs(f"kustomize/overlays/{overlay}")
    route, gateway = find(docs, *ROUTE), find(docs, "Gateway", "vid2mp3")
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "vid2mp3", "sectionName": "https"}]
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    assert (listeners["http"]["port"], listeners["https"]["port"]) == (80, 443)
    assert route["spec"]["hostnames"] == [listeners["http"]["hostname"]] == [listeners["https"]["hostname"]]
    assert listeners["https"]["tls"]["mode"] == "Terminate"
    assert [ref["name"] for ref in listeners["https"]["tls"]["certificateRefs"]], "no TLS Secret"
    redirect = find(docs, "HTTPRoute", "https-redirect")
    assert redirect["spec"]["parentRefs"][0]["sectionName"] == "http"
    assert redirect["spec"]["rules"][0]["filters"][0]["requestRedirect"]["scheme"] == "https"
    _, settings = deployment_settings(docs, "gateway")
    if overlay != "dev":  # dev's links name the port-forward (PUBLIC_URL http://127.0.0.1:8080)
        assert urlsplit(settings["PUBLIC_URL"]).hostname == route["spec"]["hostnames"][0]
    assert not [d for d in docs if d["kind"] == "Ingress"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_edge_proxies_reach_the_gateway_port(build, overlay):
    """With the gateway-api component, the peers on 8080 are that Gateway's proxies (or the load
    generator's pods, with its component): no namespace of a retired controller."""
    docs = build.docs(f"kustomize/overlays/{overlay}")
    edge = find(docs, "NetworkPolicy", "gateway-from-edge")
    (rule,) = edge["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "vid2mp3"}}},
                            ENVOY_PROXIES]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


@pytest.mark.parametrize("target", TARGETS)
def test_no_controller_specific_annotations(build, target):
    """Controller settings live in the optional components' policies, never as annotations on the
    route or the Ingress (ingress-nginx is retired)."""
    for d in build.docs(target):
        if d["kind"] in ("Ingress", "HTTPRoute"):
            assert not [a for a in d["metadata"].get("annotations", {}) if "ingress.kubernetes.io" in a
                        or a.startswith(("nginx.", "traefik.", "haproxy."))], d["metadata"]


def test_ingress_component_replaces_the_route(build):
    docs = build.docs("kustomize/tests/ingress")
    assert not [d for d in docs if is_gateway_api(d)]
    ingress = find(docs, "Ingress", "gateway")
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}}
    # the patch of the component's README names the controller's namespace as the only edge
    edge = find(docs, "NetworkPolicy", "gateway-from-edge")
    assert edge["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "my-controller-namespace"}}}]


# ------------------------------------------------------------------ the implementations' policies


@pytest.mark.parametrize("target", TARGETS)
def test_policies_target_objects_of_the_build(build, target):
    """Envoy Gateway's and NGINX Gateway Fabric's policies have no schema offline: their targets must be
    objects of the same build, their durations and sizes in the formats their CRDs accept."""
    docs = build.docs(target)
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for policy in (d for d in docs if d["apiVersion"].startswith(POLICY_GROUPS)):
        spec = policy["spec"]
        refs = spec["targetRefs"] if "targetRefs" in spec else [spec["targetRef"]]
        for ref in refs:
            assert ref["group"] == "gateway.networking.k8s.io" and (ref["kind"], ref["name"]) in present, ref
        nginx = policy["apiVersion"].startswith("gateway.nginx.org/")
        for key, value in _leaves(spec):
            if key in ("maxSize",):
                assert NGINX_SIZE.match(value), (key, value)
            elif key.endswith("Timeout") or key in ("timeout", "server", "header", "time", "minTimeout"):
                assert (NGINX_DURATION if nginx else DURATION).match(value), (policy["kind"], key, value)


def _leaves(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v, key)
    else:
        yield key, node


ENVOY_PROXIES = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
                 "podSelector": {"matchLabels": {"gateway.envoyproxy.io/owning-gateway-name": "vid2mp3"}}}


@pytest.mark.parametrize("target", ["kustomize/tests/gateway-api", "kustomize/tests/envoy-gateway"])
def test_envoy_gateway_proxies_may_reach_the_gateway(build, target):
    """The gateway-api component's default class is Envoy Gateway's (`eg`), whose proxies run in
    envoy-gateway-system: without the envoy-gateway component too, they must get through."""
    edge = find(build.docs(target), "NetworkPolicy", "gateway-from-edge")
    peers = edge["spec"]["ingress"][0]["from"]
    assert peers.count(ENVOY_PROXIES) == 1, peers


def test_nginx_gateway_fabric_allows_uploads_of_max_upload_bytes(build):
    docs = build.docs("kustomize/tests/nginx-gateway-fabric")
    policy = find(docs, "ClientSettingsPolicy", "gateway")
    size = policy["spec"]["body"]["maxSize"]
    factor = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(size[-1], 1)
    assert int(size.rstrip("kmg")) * factor >= int(config.default("MAX_UPLOAD_BYTES"))
    assert find(docs, "Gateway", "vid2mp3")["spec"]["gatewayClassName"] == "nginx"
