"""Facts about the built YAML that matter in production."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import yaml

from services.common.config import SETTINGS

from .conftest import OVERLAYS, ROOT, SERVICES, find, pod_specs
from .test_kustomize_build import TARGETS

SETTING_NAMES = {name for name, _, _ in SETTINGS}
# what each service cannot run without in a cluster (ConfigMap keys or container env)
NEEDED = {
    "auth": {"BIND_HOST", "AUTH_PORT", "MYSQL_HOST", "MYSQL_PORT", "MYSQL_USER", "MYSQL_PASSWORD",
             "MYSQL_DATABASE", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEYS", "DEPLOY_ENV", "PROMETHEUS_MULTIPROC_DIR"},
    "gateway": {"BIND_HOST", "GATEWAY_PORT", "AUTH_URL", "PUBLIC_URL", "RABBITMQ_URL", "MONGO_URI",
                "VIDEO_QUEUE", "MP3_QUEUE", "DEPLOY_ENV", "PROMETHEUS_MULTIPROC_DIR", "LINK_SECRET"},
    "converter": {"BIND_HOST", "CONVERTER_METRICS_PORT", "RABBITMQ_URL", "MONGO_URI", "VIDEO_QUEUE", "MP3_QUEUE",
                  "WORK_DIR", "FFMPEG_TIMEOUT_SECONDS", "DEPLOY_ENV"},
    "notification": {"BIND_HOST", "NOTIFICATION_METRICS_PORT", "RABBITMQ_URL", "MONGO_URI", "MP3_QUEUE",
                     "WEBHOOK_QUEUE", "SMTP_HOST", "SMTP_PORT", "MAIL_FROM", "PUBLIC_URL", "DEPLOY_ENV", "LINK_SECRET"},
}
OTEL_NEEDED = {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"}


@pytest.fixture(scope="module")
def prod(build):
    return build.docs("kustomize/overlays/prod")


ADAPTER_COMBO = "kustomize/tests/converter-hpa-prometheus-adapter"
AUTOSCALED = ["kustomize/overlays/staging", "kustomize/overlays/prod"]


@pytest.mark.parametrize("target", AUTOSCALED)
def test_converter_scales_with_keda_on_ready_plus_unacked(build, target):
    """The default converter autoscaler: KEDA's rabbitmq scaler over the management API (`messages`
    = ready + unacked), never to zero, credentials from the overlay's generated Secret."""
    docs = build.docs(target)
    so = find(docs, "ScaledObject", "converter")
    spec = so["spec"]
    assert so["apiVersion"] == "keda.sh/v1alpha1" and spec["scaleTargetRef"] == {"name": "converter"}
    assert spec["minReplicaCount"] >= 1 and spec["maxReplicaCount"] > spec["minReplicaCount"]
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "rabbitmq" and meta["protocol"] == "http" and meta["mode"] == "QueueLength"
    assert meta["queueName"] == "video" and "excludeUnacknowledged" not in meta and "host" not in meta
    b = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert b["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert b["scaleDown"]["stabilizationWindowSeconds"] >= 300
    auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    secret = find(docs, "Secret", ref["name"])  # the generated, hash-suffixed name
    assert ref["parameter"] == "host" and ref["key"] == "RABBITMQ_MANAGEMENT_URL" and ref["key"] in secret["data"]
    assert "replicas" not in find(docs, "Deployment", "converter")["spec"], "KEDA's HPA owns the replica count"
    assert not [d for d in docs if d["kind"] == "APIService"], "no prometheus-adapter by default"


@pytest.mark.parametrize("overlay", ["staging", "prod"])
def test_keda_management_url_reaches_the_broker_from_kedas_namespace(overlay):
    """KEDA's operator runs in namespace `keda`: a short Service name would not resolve there, and the
    URL must be the management API of the broker the services use (same vhost)."""
    env = dict(line.split("=", 1) for line in (ROOT / f"kustomize/overlays/{overlay}/secrets.env.example")
               .read_text().splitlines() if "=" in line and not line.startswith("#"))
    url, amqp = urlsplit(env["RABBITMQ_MANAGEMENT_URL"]), urlsplit(env["RABBITMQ_URL"])
    assert url.scheme in ("http", "https") and url.username and url.password
    assert "." in url.hostname and url.port in (15672, 15671), url.hostname
    assert url.path == amqp.path, "the management URL's path is the vhost of RABBITMQ_URL"


def test_keda_operator_reaches_the_in_cluster_management_port(build):
    docs = build.docs("kustomize/overlays/staging")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pod = find(docs, "StatefulSet", "rabbitmq")["spec"]["template"]
    peers = [peer for policy in policies for peer, ports in _ingress_ports(policy, pod) if 15672 in ports]
    assert peers == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
                      "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}}}], peers
    service = find(docs, "Service", "rabbitmq")
    assert 15672 in {p["port"] for p in service["spec"]["ports"]}


def test_adapter_hpa_is_the_optional_converter_autoscaler(build):
    """components/converter-hpa-prometheus-adapter: an HPA on RabbitMQ's own rabbitmq_queue_messages
    (ready + unacked) through prometheus-adapter, sized and shaped exactly like the KEDA default."""
    docs = build.docs(ADAPTER_COMBO)
    hpa = find(docs, "HorizontalPodAutoscaler", "converter")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "converter"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "rabbitmq_queue_messages"
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"queue": "video"}
    assert metric["external"]["target"]["type"] == "AverageValue"
    # the adapter serves that metric name from RabbitMQ's own series
    cfg = find(docs, "ConfigMap", next(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"
                                      and d["metadata"]["name"].startswith("prometheus-adapter-config")))
    assert "as: rabbitmq_queue_messages" in cfg["data"]["config.yaml"]
    find(docs, "APIService", "v1beta1.external.metrics.k8s.io")
    assert "replicas" not in find(docs, "Deployment", "converter")["spec"]
    # same sizing as the default: switching autoscalers must not change capacity
    so = find(build.docs("kustomize/tests/converter-keda"), "ScaledObject", "converter")["spec"]
    assert hpa["spec"]["behavior"] == so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert float(metric["external"]["target"]["averageValue"]) == float(so["triggers"][0]["metadata"]["value"])
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (so["minReplicaCount"], so["maxReplicaCount"])


@pytest.mark.parametrize("target", TARGETS)
def test_one_autoscaler_per_workload(build, target):
    """Two autoscalers on one Deployment fight over its replica count: converter-keda and
    converter-hpa-prometheus-adapter exclude each other."""
    docs = build.docs(target)
    scaled = [d["spec"]["scaleTargetRef"]["name"] for d in docs
              if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert len(scaled) == len(set(scaled)), scaled


def test_prod_shape(prod):
    gw = find(prod, "HorizontalPodAutoscaler", "gateway")
    assert gw["spec"]["metrics"][0]["resource"]["name"] == "cpu" and gw["spec"]["minReplicas"] >= 2
    for s in SERVICES:
        find(prod, "PodDisruptionBudget", s)
        spec = find(prod, "Deployment", s)["spec"]["template"]["spec"]
        keys = {c["topologyKey"] for c in spec.get("topologySpreadConstraints", [])}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys, s
    kinds = {d["kind"] for d in prod}
    assert "StatefulSet" not in {d["kind"] for d in prod if d["metadata"]["name"] in ("mongodb", "mysql", "rabbitmq")}
    assert "NetworkPolicy" in kinds
    assert find(prod, "Deployment", "converter")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 600
    assert all(d["metadata"].get("namespace") in ("vid2mp3", "kube-system") for d in prod
               if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "APIService"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_http_services_run_one_process_per_pod_and_scale_with_an_hpa(build, overlay):
    """Above one gunicorn worker, metrics go multiprocess: exemplars and the process_* CPU and memory
    series vanish. So one worker everywhere, and in the autoscaled overlays an HPA adds pods."""
    docs = build.docs(f"kustomize/overlays/{overlay}")
    for service in ("auth", "gateway"):
        deployment = find(docs, "Deployment", service)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        config = {}
        for ref in container.get("envFrom", []):
            config.update(find(docs, "ConfigMap", ref["configMapRef"]["name"])["data"])
        assert config.get("GUNICORN_WORKERS") == "1", (overlay, service)
        assert "GUNICORN_WORKERS" not in {e["name"] for e in container.get("env", [])}
        if overlay == "dev":
            continue
        hpa = find(docs, "HorizontalPodAutoscaler", service)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


def test_compose_runs_one_process_per_container():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for service in ("auth", "gateway"):
        assert compose["services"][service]["environment"]["GUNICORN_WORKERS"] == "1"


def test_dev_is_one_replica_with_in_cluster_infra(build):
    dev = build.docs("kustomize/overlays/dev")
    for s in SERVICES:
        assert find(dev, "Deployment", s)["spec"]["replicas"] == 1
    for s in ("rabbitmq", "mongodb", "mysql"):
        assert find(dev, "StatefulSet", s)["spec"]["replicas"] == 1
    find(dev, "Deployment", "mailpit")
    rabbit = find(dev, "StatefulSet", "rabbitmq")["spec"]["template"]["metadata"]["annotations"]
    assert rabbit["prometheus.io/path"] == "/metrics/per-object" and rabbit["prometheus.io/port"] == "15692"


# workloads whose pods exit when done: their exit code is their health, so no probes
RUN_TO_COMPLETION = ("Job", "CronJob")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_probed_limited_and_unprivileged(build, overlay):
    problems = []
    for d, spec in pod_specs(build.docs(f"kustomize/overlays/{overlay}")):
        name = f"{d['kind']}/{d['metadata']['name']}"
        psc = spec.get("securityContext", {})
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccomp RuntimeDefault")
        mounts_tmp = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec.get("initContainers", []) + spec["containers"]:
            cname = f"{name}[{c['name']}]"
            sc = c.get("securityContext", {})
            if not (psc.get("runAsNonRoot") or sc.get("runAsNonRoot")):
                problems.append(f"{cname}: runAsNonRoot")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cname}: allowPrivilegeEscalation false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cname}: readOnlyRootFilesystem")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{cname}: drop ALL capabilities")
            for p in ("livenessProbe", "readinessProbe"):
                if p not in c and d["kind"] not in RUN_TO_COMPLETION:
                    problems.append(f"{cname}: {p}")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(kind, {})):
                    problems.append(f"{cname}: {kind} cpu+memory")
            if not any(m["mountPath"] == "/tmp" and m["name"] in mounts_tmp for m in c.get("volumeMounts", [])):
                problems.append(f"{cname}: emptyDir on /tmp")
    assert not problems, "\n".join(problems)


# (service port with /healthz and /readyz, metrics port)
PORTS = {"auth": (5000, 9103), "gateway": (8080, 9102), "converter": (9100, 9100), "notification": (9101, 9101)}


def test_service_probes_hit_the_real_endpoints(prod):
    for s, (port, metrics_port) in PORTS.items():
        d = find(prod, "Deployment", s)
        c = d["spec"]["template"]["spec"]["containers"][0]
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert named[c["readinessProbe"]["httpGet"]["port"]] == port
        assert named["metrics"] == metrics_port
        ann = d["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(metrics_port)
        assert d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == s


def _selects(policy: dict, pod: dict) -> bool:
    """Whether `policy` applies to a pod with this pod template's labels."""
    sel = policy["spec"]["podSelector"]
    labels = pod["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in sel.get("matchLabels", {}).items()):
        return False
    return all(e["operator"] == "In" and labels.get(e["key"]) in e["values"] for e in sel.get("matchExpressions", []))


def _ingress_ports(policy: dict, pod: dict) -> list[tuple[dict, set]]:
    """(peer, ports) of every ingress rule of `policy` that applies to a pod with these labels."""
    if not _selects(policy, pod):
        return []
    return [(peer, {p["port"] for p in rule.get("ports", [])} or {"any"})
            for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [{}])]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_ports_are_private(build, overlay):
    """The metrics ports of auth and gateway are in no Service and no Ingress, and only Prometheus may reach them."""
    docs = build.docs(f"kustomize/overlays/{overlay}")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for s in ("auth", "gateway"):
        port, metrics_port = PORTS[s]
        service = find(docs, "Service", s)
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
        pod = find(docs, "Deployment", s)["spec"]["template"]
        peers = [peer for policy in policies for peer, ports in _ingress_ports(policy, pod)
                 if metrics_port in ports or "any" in ports]
        assert peers == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}], (s, peers)
        prometheus = find(docs, "NetworkPolicy", "prometheus")
        assert any(metrics_port in {p["port"] for p in rule["ports"]} for rule in prometheus["spec"]["egress"])
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == "gateway" and backend["port"] in ({"name": "http"}, {"number": 8080})


def test_no_latest_or_untagged_images_in_prod(prod):
    for _, spec in pod_specs(prod):
        for c in spec["containers"]:
            image = c["image"]
            tag = image.rsplit("@", 1)[0].rsplit("/", 1)[-1]
            assert ":" in tag or "@sha256:" in image, f"{image} has no tag"
            assert not tag.endswith(":latest") and not tag.endswith(":dev"), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_keys_are_known_settings_and_cover_needs(build, overlay):
    docs = build.docs(f"kustomize/overlays/{overlay}")
    for s in SERVICES:
        spec = find(docs, "Deployment", s)["spec"]["template"]["spec"]
        c = spec["containers"][0]
        cm_names = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
        keys: set[str] = set()
        for n in cm_names:
            cm = find(docs, "ConfigMap", n)
            unknown = {k for k in cm["data"] if k not in SETTING_NAMES and not k.startswith("OTEL_")}
            assert not unknown, f"{n}: keys that services/common/config.py does not know: {unknown}"
            keys |= set(cm["data"])
        env = {e["name"] for e in c.get("env", [])}
        assert not {e for e in env if e not in SETTING_NAMES and not e.startswith("OTEL_")}
        missing = (NEEDED[s] | OTEL_NEEDED) - keys - env
        assert not missing, f"{overlay}/{s} lacks {missing}"


def test_secrets_come_from_generators_only(build):
    for o in OVERLAYS:
        for d in build.docs(f"kustomize/overlays/{o}"):
            if d["kind"] == "Secret":
                assert re.search(r"-[a-z0-9]{10}$", d["metadata"]["name"]), d["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_egress_adds_to_the_in_cluster_rules(build, overlay):
    """prod's egress to its managed services must not replace the base rules: the gateway still reaches auth."""
    docs = build.docs(f"kustomize/overlays/{overlay}")
    gateway = find(docs, "NetworkPolicy", "gateway")
    assert any(peer.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "auth"}
               and {p["port"] for p in rule["ports"]} == {5000}
               for rule in gateway["spec"]["egress"] for peer in rule["to"])


DNS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
MONGODB_PEER = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "mongodb"}}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_janitor_cronjob(build, overlay):
    """One retention round every 5 minutes, never two at once, each bounded; a locked-down pod
    without probes, with MongoDB's URI and the retention settings it shares with the gateway."""
    docs = build.docs(f"kustomize/overlays/{overlay}")
    cron = find(docs, "CronJob", "janitor")
    spec = cron["spec"]
    assert cron["apiVersion"] == "batch/v1" and spec["schedule"] == "*/5 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid" and not spec.get("suspend")
    assert 0 < spec["startingDeadlineSeconds"] < 300
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert 0 < job["backoffLimit"] <= 3
    assert 0 < job["activeDeadlineSeconds"] < 300, "a hung round must end before the next one is due"
    assert job["ttlSecondsAfterFinished"] > 0
    pod = job["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "janitor"
    ps = pod["spec"]
    assert ps["restartPolicy"] == "Never" and ps["serviceAccountName"] == "janitor"
    assert ps["automountServiceAccountToken"] is False
    assert find(docs, "ServiceAccount", "janitor")["automountServiceAccountToken"] is False
    psc = ps["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    (c,) = ps["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc.get("privileged")
    assert not {"livenessProbe", "readinessProbe", "startupProbe", "ports"} & set(c)
    assert c["command"] == ["python", "-m", "services.janitor", "--once"]
    # named like the other images, with the same tag
    gateway = find(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    gw_image = gateway["containers"][0]["image"]
    assert c["image"] == gw_image.replace("/gateway:", "/janitor:"), (c["image"], gw_image)
    assert c["imagePullPolicy"] == gateway["containers"][0]["imagePullPolicy"]
    # settings: known keys; MongoDB from the shared Secret; no broker
    cms = [e["configMapRef"]["name"] for e in c["envFrom"]]
    keys = set()
    for n in cms:
        data = find(docs, "ConfigMap", n)["data"]
        assert not {k for k in data if k not in SETTING_NAMES and not k.startswith("OTEL_")}, n
        keys |= set(data)
    assert {"VIDEO_RETENTION_SECONDS", "RESULT_RETENTION_SECONDS", "JANITOR_GRACE_SECONDS", "DEPLOY_ENV",
            "OTEL_SERVICE_NAME"} <= keys
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env["MONGO_URI"]["name"].startswith("vid2mp3-secrets-") and "RABBITMQ_URL" not in env
    # the gateway reads the same retention settings (expires_at in the job view)
    storage = next(n for n in cms if n.startswith("storage-config"))
    assert storage in [e["configMapRef"]["name"] for e in gateway["containers"][0]["envFrom"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_janitor_network_policy(build, overlay):
    """Nothing may reach the janitor; it may reach MongoDB (and DNS) only."""
    docs = build.docs(f"kustomize/overlays/{overlay}")
    pod = find(docs, "CronJob", "janitor")["spec"]["jobTemplate"]["spec"]["template"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy" and _selects(d, pod)]
    # isolated both ways (default-deny), and no rule lets anything in
    assert any("Ingress" in p["spec"]["policyTypes"] for p in policies)
    assert any("Egress" in p["spec"]["policyTypes"] for p in policies)
    assert not [p["metadata"]["name"] for p in policies if p["spec"].get("ingress")]
    own = find(docs, "NetworkPolicy", "janitor")
    assert set(own["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not own["spec"].get("ingress")
    # every egress rule is DNS or MongoDB's port
    mongo_peers = []
    for p in policies:
        for rule in p["spec"].get("egress", []):
            ports = {(x["protocol"], x["port"]) for x in rule.get("ports", [])}
            peers = rule.get("to", [])
            assert peers and ports, f"{p['metadata']['name']}: an egress rule open to any peer or port"
            if peers == [DNS_PEER]:
                assert ports == {("UDP", 53), ("TCP", 53)}
                continue
            assert ports == {("TCP", 27017)}, (p["metadata"]["name"], ports)
            mongo_peers += peers
    assert MONGODB_PEER in mongo_peers
    if overlay == "prod":  # the managed MongoDB, the same range as the gateway's
        managed = find(docs, "NetworkPolicy", "gateway-managed-egress")["spec"]["egress"]
        mongo_cidrs = [peer for rule in managed if {x["port"] for x in rule["ports"]} == {27017} for peer in rule["to"]]
        assert [p for p in mongo_peers if "ipBlock" in p] == mongo_cidrs
    else:  # the in-cluster MongoDB lets it in
        mongodb = find(docs, "StatefulSet", "mongodb")["spec"]["template"]
        assert any(_selects({"spec": {"podSelector": peer["podSelector"]}}, pod) and 27017 in ports
                   for policy in docs if policy["kind"] == "NetworkPolicy"
                   for peer, ports in _ingress_ports(policy, mongodb) if "podSelector" in peer)
