"""The Helm chart charts/webrana: linted and rendered offline by the Helm SDK embedded in `helm-python-sdk`
(no helm binary, no cluster), every rendered manifest validated against the Kubernetes OpenAPI schemas
shipped by `kubernetes-validate`, and the deployment rules of issue 7 checked on the rendered objects."""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import ipaddress
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate as kv
import pytest
import yaml

from webrana_proxy.clientip import client_ip
from webrana_proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "webrana"
GRAFANA_JSON = CHART / "dashboards" / "webrana-grafana.json"
RELEASE = "webrana"
NAMESPACE = "webrana"

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest the validator knows.
KUBE_VERSIONS = ("1.25", kv.latest_version())

# Containers listen on every interface of their pod (the app's default is loopback only).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

# A 2 vCPU / 4 GB node leaves about this much to pods once the kubelet and system pods took their share.
NODE_ALLOCATABLE_CPU_MILLI = 1900
NODE_ALLOCATABLE_MEMORY_MIB = 3300

# Every environment variable the processes read from the Secret (never from values).
SECRET_ENV = {"DATABASE_URL", "REDIS_URL", "MASTER_ENCRYPTION_KEY", "JWT_SECRET", "MIDTRANS_SERVER_KEY",
              "MIDTRANS_CLIENT_KEY", "WEBRANA_SESSION_SECRET", "MASTER_ENCRYPTION_KEY_PREVIOUS", "WEBRANA_SMTP_URL"}

# The metrics issue 2 names; the proxy's real registry must export them and the dashboard must chart them.
ISSUE_METRICS = {"webrana_requests_total", "webrana_request_duration_seconds",
                 "webrana_upstream_duration_seconds", "webrana_gateway_overhead_seconds",
                 "webrana_tokens_total", "webrana_open_streams", "webrana_limiter_rejections_total",
                 "webrana_usage_queue_depth", "webrana_usage_write_failures_total"}

# The Prometheus Operator's CRD is not in the Kubernetes schemas: check the part of it the chart uses.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": {"type": "object"}},
                             "additionalProperties": False},
                "namespaceSelector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}}},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["port"], "additionalProperties": False,
                    "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                   "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                   "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}}}},
            },
        },
    },
}


def _load_values(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _everything_on() -> dict[str, Any]:
    """Production values with every optional branch flipped the other way, so no template goes unrendered."""
    values = copy.deepcopy(_load_values("values-production.yaml"))
    values["proxy"]["autoscaling"]["enabled"] = False
    values["proxy"]["autoscaling"]["targetMemoryUtilizationPercentage"] = 80
    values["proxy"]["pdb"] = {"enabled": True, "maxUnavailable": 1}
    values["proxy"]["preStopSleep"] = 0
    values["dashboard"]["healthPath"] = "/health"
    values["serviceAccount"] = {"create": False, "name": "webrana-runtime", "annotations": {}}
    values["imagePullSecrets"] = [{"name": "registry-credentials"}]
    values["config"]["extraEnv"] = {"WEBRANA_IP_RATE_LIMIT": "120"}
    values["config"]["apiUrl"] = "https://llm.example.com"
    values["ingress"]["enabled"] = True
    values["proxy"].setdefault("journal", {})["existingClaim"] = "webrana-journal"
    return values


@functools.cache
def _value_set(name: str) -> dict[str, Any]:
    """The values of one scenario: chart defaults, the production example, or every branch flipped."""
    if name == "default":
        return {}
    if name == "production":
        return _load_values("values-production.yaml")
    return _everything_on()


VALUE_NAMES = ("default", "production", "everything-on")


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _render(chart: Any, values: dict[str, Any], *, upgrade: bool = False) -> dict[str, str]:
    rendered: dict[str, str] = chart.render(values=values, name=RELEASE, namespace=NAMESPACE,
                                            revision=2 if upgrade else 1,
                                            is_install=not upgrade, is_upgrade=upgrade)
    return rendered


def _manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), f"{path}: a manifest must be a mapping"
                doc.setdefault("metadata", {})
                docs.append(doc)
    return docs


@pytest.fixture(scope="module", params=VALUE_NAMES)
def rendered(request: pytest.FixtureRequest, chart: Any) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _manifests(_render(chart, _value_set(request.param)))


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"].get("name") == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {[d['metadata'].get('name') for d in found]}"
    return found[0]


def _kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [e["name"] for e in container.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env vars in {container['name']}: {names}"
    return {e["name"]: e for e in container.get("env", [])}


def _workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in {"Deployment", "Job"}]


def _cpu_milli(raw: str | int | float) -> int:
    text = str(raw)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def _memory_mib(raw: str | int) -> float:
    text = str(raw)
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024,
             "K": 1000 / 1024**2, "M": 1000**2 / 1024**2, "G": 1000**3 / 1024**2}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text) / 1024**2


# --- lint and schema validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("values_name", VALUE_NAMES)
def test_chart_lints_clean_in_strict_mode(values_name: str) -> None:
    report = helm.lint(CHART, _value_set(values_name), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_every_manifest_matches_the_kubernetes_schemas(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    assert docs, f"{name}: nothing rendered"
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
            continue
        for version in KUBE_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name}: {doc['kind']} {doc['metadata'].get('name')} invalid for Kubernetes "
                            f"{version} at {where}: {exc.message}")


def test_the_schema_check_rejects_a_broken_manifest(chart: Any) -> None:
    """Guards the guard: a typo in a template (an unknown field) must fail validation."""
    deployment = _one(_manifests(_render(chart, {})), "Deployment", f"{RELEASE}-proxy")
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"tcpSocket": {"port": 8080}}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_default_values_render_the_required_objects(chart: Any) -> None:
    docs = _manifests(_render(chart, {}))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [("Deployment", f"{RELEASE}-proxy"), ("Deployment", f"{RELEASE}-dashboard"),
                     ("Service", f"{RELEASE}-proxy"), ("Service", f"{RELEASE}-dashboard"),
                     ("Ingress", RELEASE), ("HorizontalPodAutoscaler", f"{RELEASE}-proxy"),
                     ("PodDisruptionBudget", f"{RELEASE}-proxy"), ("Job", f"{RELEASE}-migrate-1")]:
        assert expected in kinds, f"{expected} missing from {sorted(kinds)}"
    # Off by default: they need the Prometheus Operator / Grafana's sidecar in the cluster.
    assert not _kinds(docs, "ServiceMonitor")
    assert not _kinds(docs, "ConfigMap")


def test_a_missing_secret_name_stops_the_render_with_a_clear_message(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match=r"secrets\.existingSecret"):
        _render(chart, {"secrets": {"existingSecret": ""}})


# --- secrets ----------------------------------------------------------------------------------------------

def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def _looks_like_a_secret(text: str) -> bool:
    if re.search(r"(postgres(ql)?|rediss?)://[^/\s]*:[^@/\s]+@", text):  # a URL with a password in it
        return True
    if re.search(r"\bMid-(server|client)-[A-Za-z0-9_-]{8,}", text):  # a Midtrans key
        return True
    if re.fullmatch(r"[A-Za-z0-9+/]{43}=", text):  # 32 bytes of base64: a master key
        try:
            return len(base64.b64decode(text, validate=True)) == 32
        except binascii.Error:
            return False
    # a long random-looking token: mixed case and digits, no spaces
    return len(text) >= 32 and " " not in text and bool(re.search(r"[a-z]", text)) \
        and bool(re.search(r"[A-Z]", text)) and bool(re.search(r"\d", text))


@pytest.mark.parametrize("values_file", ["values.yaml", "values-production.yaml"])
def test_values_files_hold_no_secret_values(values_file: str) -> None:
    values = _load_values(values_file)
    offenders = [(p, s) for p, s in _strings(values) if _looks_like_a_secret(s)]
    assert offenders == [], f"{values_file} holds what looks like secret material: {offenders}"
    # The secrets section names a Secret and its keys; nothing in it is a value.
    secrets = values.get("secrets", {})
    assert set(secrets) <= {"existingSecret", "keys", "optionalKeys"}, secrets
    for mapping in (secrets.get("keys", {}), secrets.get("optionalKeys", {})):
        for env_name, key in mapping.items():
            assert env_name in SECRET_ENV
            assert re.fullmatch(r"[-._A-Za-z0-9]{1,253}", key), f"{env_name}: {key!r} is not a key name"
    # No secret variable is set as plain text through extraEnv or anywhere else in the values.
    flat = json.dumps(values)
    for env_name in SECRET_ENV:
        assert f'"{env_name}": "' not in flat.replace(f'"{env_name}": "{env_name}"', "")


def test_secret_settings_come_only_from_the_referenced_secret(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    assert not _kinds(docs, "Secret"), "the chart must reference Secrets, never create them"
    secret_name = (_value_set(name).get("secrets") or {}).get("existingSecret", "webrana-secrets")
    for workload in _workloads(docs):
        for container in _pod_spec(workload)["containers"]:
            for env_name, entry in _env(container).items():
                if env_name in SECRET_ENV:
                    assert "value" not in entry, f"{env_name} set as plain text in {container['name']}"
                    assert entry["valueFrom"]["secretKeyRef"]["name"] == secret_name


def test_the_proxy_and_the_migration_get_every_secret_and_the_console_only_its_own(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    proxy = _env(_pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0])
    dashboard = _env(_pod_spec(_one(docs, "Deployment", f"{RELEASE}-dashboard"))["containers"][0])
    job = _env(_pod_spec(_kinds(docs, "Job")[0])["containers"][0])
    assert set(proxy) >= SECRET_ENV
    assert set(job) >= SECRET_ENV
    assert SECRET_ENV & set(dashboard) == {"WEBRANA_SESSION_SECRET", "MIDTRANS_CLIENT_KEY"}
    optional = proxy["MASTER_ENCRYPTION_KEY_PREVIOUS"]["valueFrom"]["secretKeyRef"]
    assert optional.get("optional") is True
    assert proxy["MASTER_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"].get("optional") is not True


def test_the_proxy_gets_the_smtp_server_from_the_secret_and_the_sender_from_the_values(chart: Any) -> None:
    docs = _manifests(_render(chart, {"config": {"mailFrom": "Webrana <no-reply@example.co.id>"}}))
    proxy = _env(_pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0])
    smtp = proxy["WEBRANA_SMTP_URL"]["valueFrom"]["secretKeyRef"]
    assert smtp["key"] == "WEBRANA_SMTP_URL" and smtp.get("optional") is True  # absent: mail off, still starts
    assert proxy["WEBRANA_MAIL_FROM"]["value"] == "Webrana <no-reply@example.co.id>"
    default = _manifests(_render(chart, {}))
    assert "WEBRANA_MAIL_FROM" not in _env(_pod_spec(_one(default, "Deployment", f"{RELEASE}-proxy"))["containers"][0])
    assert _load_values("values-production.yaml")["config"]["mailFrom"]


# --- probes, shutdown, processes ---------------------------------------------------------------------------

def test_proxy_probes_point_at_the_health_endpoints(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    container = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # Liveness must not depend on PostgreSQL/Redis: an outage must not restart every replica.
    assert container["livenessProbe"]["httpGet"]["path"] != "/health/ready"
    env = _env(container)
    assert env["WEBRANA_PROXY_HOST"]["value"] == ALL_INTERFACES
    assert env["WEBRANA_PROXY_PORT"]["value"] == "8080"


def test_dashboard_probes_use_its_port_and_reach_the_proxy_in_cluster(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    container = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-dashboard"))["containers"][0]
    assert container["args"] == ["webrana-dashboard", "serve"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8081}
    for probe in ("readinessProbe", "livenessProbe"):
        handler = container[probe].get("httpGet") or container[probe]["tcpSocket"]
        assert handler["port"] == "http"
    if name == "everything-on":
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    env = _env(container)
    assert env["WEBRANA_API_URL"]["value"] == f"http://{RELEASE}-proxy:8080"
    assert _one(docs, "Service", f"{RELEASE}-proxy")["spec"]["ports"][0]["port"] == 8080
    assert env["WEBRANA_DASHBOARD_HOST"]["value"] == ALL_INTERFACES


def test_termination_grace_outlasts_the_shutdown_grace(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    pod = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))
    container = pod["containers"][0]
    shutdown_grace = float(_env(container)["WEBRANA_SHUTDOWN_GRACE"]["value"])
    pre_stop = (container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
                .get("command", ["sleep", "0"]))
    assert pod["terminationGracePeriodSeconds"] > shutdown_grace + float(pre_stop[-1])


def test_proxy_runs_the_configured_number_of_workers(chart: Any) -> None:
    docs = _manifests(_render(chart, {"proxy": {"workers": 3}}))
    container = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0]
    assert container["args"] == ["webrana-proxy", "serve", "--workers", "3"]


# --- client addresses (issue 11, item 8) -------------------------------------------------------------------

PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def _trusted_env(docs: list[dict[str, Any]]) -> str:
    container = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0]
    value: str = _env(container)["WEBRANA_TRUSTED_PROXIES"]["value"]
    return value


def _trusted_by_the_proxy(value: str) -> tuple[Any, ...]:
    """What the proxy's real settings make of the rendered WEBRANA_TRUSTED_PROXIES."""
    env = {"DATABASE_URL": "postgresql://webrana@db:5432/webrana", "REDIS_URL": "redis://redis:6379/0",
           "MASTER_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
           "JWT_SECRET": secrets.token_urlsafe(48), "MIDTRANS_SERVER_KEY": "SB-Mid-server-x",
           "MIDTRANS_CLIENT_KEY": "SB-Mid-client-x", "WEBRANA_TRUSTED_PROXIES": value}
    return Settings.from_env(env).trusted_proxies


def _notes(chart: Any, values: dict[str, Any]) -> str:
    return next(text for path, text in _render(chart, values).items() if path.endswith("NOTES.txt"))


def test_by_default_the_proxy_trusts_nobody_and_says_so(chart: Any) -> None:
    """The default must not be "all private ranges": any pod of the cluster could choose its address."""
    value = _trusted_env(_manifests(_render(chart, {})))
    assert value == ""
    assert _trusted_by_the_proxy(value) == ()
    for cidr in PRIVATE_RANGES:
        assert cidr not in _load_values("values.yaml")["config"]["trustedProxies"]
    assert "WARNING: config.trustedProxies is empty" in _notes(chart, {})


@pytest.mark.parametrize("named", [["10.8.0.0/14", "192.0.2.10/32"], "10.8.0.0/14, 192.0.2.10/32"])
def test_the_proxy_trusts_exactly_what_the_values_name(chart: Any, named: list[str] | str) -> None:
    docs = _manifests(_render(chart, {"config": {"trustedProxies": named}}))
    value = _trusted_env(docs)
    assert value == "10.8.0.0/14,192.0.2.10/32"
    trusted = _trusted_by_the_proxy(value)
    assert trusted == (ipaddress.ip_network("10.8.0.0/14"), ipaddress.ip_network("192.0.2.10/32"))
    assert client_ip("10.9.1.2", "203.0.113.9", trusted) == "203.0.113.9"  # an ingress pod in the pod CIDR
    assert client_ip("10.20.0.5", "203.0.113.9", trusted) == "10.20.0.5"  # anything else cannot choose
    assert "networkPolicy.enabled admits only" in _notes(chart, {"config": {"trustedProxies": named}})


def test_the_production_example_trusts_the_pod_cidr_behind_a_network_policy() -> None:
    values = _load_values("values-production.yaml")
    assert values["config"]["trustedProxies"] == ["10.8.0.0/14"]
    assert values["networkPolicy"]["enabled"] is True


@pytest.mark.parametrize("everybody", ["0.0.0.0/0", "::/0", ["10.8.0.0/14", "0.0.0.0/0"]])
def test_trusting_everybody_stops_the_render(chart: Any, everybody: list[str] | str) -> None:
    with pytest.raises(helm.HelmError, match=r"config\.trustedProxies must not trust everybody"):
        _render(chart, {"config": {"trustedProxies": everybody}})


def test_the_network_policy_admits_only_the_console_and_the_named_peers(chart: Any) -> None:
    ingress_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    docs = _manifests(_render(chart, {"networkPolicy": {"enabled": True, "proxyFrom": [ingress_peer]}}))
    policy = _one(docs, "NetworkPolicy", f"{RELEASE}-proxy")
    for version in KUBE_VERSIONS:
        kv.validate(policy, version, strict=True)
    proxy = _one(docs, "Deployment", f"{RELEASE}-proxy")
    console = _one(docs, "Deployment", f"{RELEASE}-dashboard")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == proxy["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Ingress"]
    [rule] = spec["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": console["spec"]["selector"]["matchLabels"]}},
                            ingress_peer]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert not _kinds(_manifests(_render(chart, {})), "NetworkPolicy"), "off by default (needs a CNI for it)"


def test_a_network_policy_that_would_cut_off_the_ingress_stops_the_render(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match=r"networkPolicy\.proxyFrom must name the ingress controller"):
        _render(chart, {"networkPolicy": {"enabled": True}})
    docs = _manifests(_render(chart, {"networkPolicy": {"enabled": True}, "ingress": {"enabled": False}}))
    assert len(_one(docs, "NetworkPolicy", f"{RELEASE}-proxy")["spec"]["ingress"][0]["from"]) == 1


# --- migration hook ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("upgrade", [False, True])
def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(chart: Any, upgrade: bool) -> None:
    docs = _manifests(_render(chart, {}, upgrade=upgrade))
    jobs = _kinds(docs, "Job")
    assert len(jobs) == 1
    job = jobs[0]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert job["metadata"]["name"].endswith(f"-{2 if upgrade else 1}")
    pod = _pod_spec(job)
    assert pod["restartPolicy"] == "Never"
    # At pre-install nothing the chart creates exists yet, so the Job may not depend on the chart's objects.
    assert "serviceAccountName" not in pod
    container = pod["containers"][0]
    assert container["args"] == ["webrana-proxy", "migrate"]
    assert _env(container)["WEBRANA_MIGRATIONS_DIR"]["value"] == "/app/sql"


def test_migrations_can_be_switched_off(chart: Any) -> None:
    assert not _kinds(_manifests(_render(chart, {"migrations": {"enabled": False}})), "Job")


# --- security and resources --------------------------------------------------------------------------------

def test_every_pod_runs_as_non_root_with_a_read_only_root(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    for workload in _workloads(docs):
        pod = _pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        assert all("hostPath" not in v for v in pod.get("volumes", []))
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, "a read-only root needs a writable /tmp"
    proxy = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0]
    journal = _env(proxy)["WEBRANA_USAGE_JOURNAL_DIR"]["value"]
    assert any(journal.startswith(m["mountPath"]) for m in proxy["volumeMounts"]), "journal dir not writable"


# --- the usage journal (issue 17) ----------------------------------------------------------------------------

def _journal_volume(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))
    container = pod["containers"][0]
    journal = _env(container)["WEBRANA_USAGE_JOURNAL_DIR"]["value"]
    mount = next(m for m in container["volumeMounts"] if journal.startswith(m["mountPath"]))
    volume: dict[str, Any] = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return volume


def test_the_usage_journal_is_an_empty_dir_by_default_fsynced_as_configured(chart: Any) -> None:
    docs = _manifests(_render(chart, {}))
    volume = _journal_volume(docs)
    assert volume["emptyDir"]["sizeLimit"] == "1Gi"
    container = _pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0]
    assert _env(container)["WEBRANA_USAGE_FSYNC_INTERVAL"]["value"] == "0.1"
    assert "WEBRANA_USAGE_SPILL_DIR" not in _env(container)
    notes = _notes(chart, {})
    assert "AOF" in notes and "emptyDir" in notes


def test_the_usage_journal_can_live_on_a_persistent_volume(chart: Any) -> None:
    docs = _manifests(_render(chart, {"proxy": {"journal": {"existingClaim": "webrana-journal"}}}))
    volume = _journal_volume(docs)
    assert volume == {"name": "journal", "persistentVolumeClaim": {"claimName": "webrana-journal"}}
    assert 'the claim "webrana-journal"' in _notes(chart, {"proxy": {"journal": {"existingClaim": "webrana-journal"}}})


def test_the_values_document_the_redis_persistence_the_outage_stream_needs() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert "appendonly yes" in text and "AOF" in text


@pytest.mark.parametrize("values_name", ["default", "production"])
def test_resource_requests_fit_a_2_vcpu_4_gb_node(chart: Any, values_name: str) -> None:
    docs = _manifests(_render(chart, _value_set(values_name)))
    pods: dict[str, tuple[int, float, float]] = {}
    for workload in _workloads(docs):
        cpu = memory = limit = 0.0
        for container in _pod_spec(workload)["containers"]:
            resources = container["resources"]
            cpu += _cpu_milli(resources["requests"]["cpu"])
            memory += _memory_mib(resources["requests"]["memory"])
            limit += _memory_mib(resources["limits"]["memory"])
            assert "cpu" not in resources.get("limits", {}), "CPU limits throttle the event loop"
        pods[workload["metadata"]["name"]] = (int(cpu), memory, limit)
    proxy = pods[f"{RELEASE}-proxy"]
    dashboard = pods[f"{RELEASE}-dashboard"]
    # Two proxy pods and a console pod share one node, by requests and by memory limits.
    assert 2 * proxy[0] + dashboard[0] <= NODE_ALLOCATABLE_CPU_MILLI
    assert 2 * proxy[1] + dashboard[1] <= NODE_ALLOCATABLE_MEMORY_MIB
    assert 2 * proxy[2] + dashboard[2] <= NODE_ALLOCATABLE_MEMORY_MIB
    assert all(cpu > 0 and memory > 0 for cpu, memory, _ in pods.values())


# --- wiring between objects --------------------------------------------------------------------------------

def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_services_pdbs_and_hpa_select_their_own_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    for component in ("proxy", "dashboard"):
        deployment = _one(docs, "Deployment", f"{RELEASE}-{component}")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
        service = _one(docs, "Service", f"{RELEASE}-{component}")
        assert _selects(service["spec"]["selector"], pod_labels)
        other = _one(docs, "Deployment", f"{RELEASE}-{'dashboard' if component == 'proxy' else 'proxy'}")
        assert not _selects(service["spec"]["selector"], other["spec"]["template"]["metadata"]["labels"])
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        pdb = _one(docs, "PodDisruptionBudget", f"{RELEASE}-{component}")
        assert _selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    hpas = _kinds(docs, "HorizontalPodAutoscaler")
    proxy_deployment = _one(docs, "Deployment", f"{RELEASE}-proxy")
    if _value_set(name).get("proxy", {}).get("autoscaling", {}).get("enabled", True):
        assert len(hpas) == 1
        assert hpas[0]["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                     "name": f"{RELEASE}-proxy"}
        assert hpas[0]["spec"]["minReplicas"] >= 2
        assert "replicas" not in proxy_deployment["spec"], "the HPA owns the replica count"
    else:
        assert hpas == []
        assert proxy_deployment["spec"]["replicas"] >= 1


def test_ingress_routes_the_api_host_to_the_proxy_and_the_console_host_to_the_dashboard(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    ingress = _one(docs, "Ingress", RELEASE)
    services = {s["metadata"]["name"]: s for s in _kinds(docs, "Service")}
    backends: dict[str, set[str]] = {}
    paths: dict[str, set[str]] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            service = path["backend"]["service"]
            assert service["name"] in services
            assert service["port"]["name"] in {p["name"] for p in services[service["name"]]["spec"]["ports"]}
            backends.setdefault(rule["host"], set()).add(service["name"])
            paths.setdefault(rule["host"], set()).add(path["path"])
    values = _value_set(name)
    api_host = values.get("ingress", {}).get("api", {}).get("host", "api.webrana.local")
    console_host = values.get("ingress", {}).get("console", {}).get("host", "console.webrana.local")
    assert backends == {api_host: {f"{RELEASE}-proxy"}, console_host: {f"{RELEASE}-dashboard"}}
    assert {"/v1", "/api"} <= paths[api_host]
    assert not any(p in {"/", "/metrics", "/health"} for p in paths[api_host]), "metrics must stay in-cluster"


def test_public_urls_follow_the_ingress_hosts(chart: Any) -> None:
    docs = _manifests(_render(chart, _value_set("production")))
    env = _env(_pod_spec(_one(docs, "Deployment", f"{RELEASE}-proxy"))["containers"][0])
    assert env["WEBRANA_CONSOLE_URL"]["value"] == "https://console.webrana.example.com"
    assert env["WEBRANA_API_URL"]["value"] == "https://api.webrana.example.com"
    assert env["MIDTRANS_IS_PRODUCTION"]["value"] == "true"


# --- monitoring --------------------------------------------------------------------------------------------

def test_service_monitor_scrapes_the_proxy_metrics_when_enabled(chart: Any) -> None:
    docs = _manifests(_render(chart, _value_set("production")))
    monitor = _one(docs, "ServiceMonitor", f"{RELEASE}-proxy")
    service = _one(docs, "Service", f"{RELEASE}-proxy")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert not _selects(monitor["spec"]["selector"]["matchLabels"],
                        _one(docs, "Service", f"{RELEASE}-dashboard")["metadata"]["labels"])
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs: list[str] = []
    for panel in dashboard["panels"]:
        exprs.extend(t["expr"] for t in panel.get("targets", []))
        for inner in panel.get("panels", []):
            exprs.extend(t["expr"] for t in inner.get("targets", []))
    return exprs


def exported_metrics() -> set[str]:
    """Names as Prometheus scrapes them from the proxy's own registry (counters get `_total`)."""
    from webrana_proxy.metrics import Metrics

    return {f.name + "_total" if f.type == "counter" else f.name for f in Metrics().registry.collect()}


def test_grafana_dashboard_charts_every_webrana_metric_and_no_other() -> None:
    assert exported_metrics() >= ISSUE_METRICS
    dashboard = json.loads(GRAFANA_JSON.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    exprs = _exprs(dashboard)
    names = {m for e in exprs for m in re.findall(r"\bwebrana_[a-z_]+", e)}
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in names}
    assert used == exported_metrics()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
    for name in re.findall(r"webrana_[a-z_]+_bucket", " ".join(exprs)):
        assert name.removesuffix("_bucket").endswith("_seconds"), "only histograms have buckets"


def test_grafana_dashboard_config_map_carries_the_dashboard_json(chart: Any) -> None:
    docs = _manifests(_render(chart, _value_set("production")))
    config_map = _one(docs, "ConfigMap", f"{RELEASE}-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    expected = json.loads(GRAFANA_JSON.read_text(encoding="utf-8"))
    assert json.loads(config_map["data"]["webrana.json"]) == expected
