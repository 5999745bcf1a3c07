"""The deploy files keep the bot's promises: Redis never loses or evicts the queue, probes
hit the right paths and ports, and pods get longer to stop than a worker needs to drain."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.runtime import build_runtime
from bot.settings import BotSettings

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
KUBERNETES_VERSION = "1.32.0"
METRICS_PORT = str(BotSettings.model_fields["metrics_port"].default)
DEFAULT_DRAIN_GRACE_S = BotSettings.model_fields["drain_grace_s"].default
REDIS_SETTINGS = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
}


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed on this machine, so the kustomization cannot render")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def port_number(spec: dict[str, Any], port: int | str) -> int:
    """A probe's port, resolving a named container port."""
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in spec.get("ports", []) if p.get("name") == port]
    return int(number)


def probe_target(spec: dict[str, Any], probe: str) -> tuple[str, int]:
    http = spec[probe]["httpGet"]
    return http["path"], port_number(spec, http["port"])


def redis_conf(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip())
    return {key: value.strip() for key, value in pairs if not key.startswith("#")}


def redis_flags(command: list[str]) -> dict[str, str]:
    flags = command[1:]
    return {flags[i].removeprefix("--"): str(flags[i + 1]) for i in range(0, len(flags), 2)}


def test_manifests_validate_against_the_kubernetes_schema(resources):
    from kubernetes_validate import validate

    kinds = {(r["kind"], r["metadata"]["name"]) for r in resources}
    assert {("Deployment", "ragbot-app"), ("Deployment", "ragbot-worker")} <= kinds
    assert {("StatefulSet", "redis"), ("Service", "redis"), ("ConfigMap", "redis")} <= kinds
    for resource in resources:
        validate(resource, KUBERNETES_VERSION, strict=True)


def test_app_probes_health_and_readiness_on_its_http_port(resources):
    app = find(resources, "Deployment", "ragbot-app")
    spec = container(app)
    assert "--http" in spec["command"]
    port = int(spec["command"][spec["command"].index("--port") + 1])
    assert probe_target(spec, "livenessProbe") == ("/healthz", port)
    assert probe_target(spec, "readinessProbe") == ("/readyz", port)
    annotations = app["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
        str(port),
        "/metrics",
    )
    service = find(resources, "Service", "ragbot-app")
    assert port_number(spec, service["spec"]["ports"][0]["targetPort"]) == port


def test_workers_serve_probes_and_metrics_on_the_metrics_port(resources):
    config = find(resources, "ConfigMap", "ragbot")["data"]
    port = int(config.get("RAGBOT_METRICS_PORT", METRICS_PORT))
    assert port != 0
    worker = find(resources, "Deployment", "ragbot-worker")
    spec = container(worker)
    assert spec["command"] == ["ragbot", "worker"]
    assert probe_target(spec, "livenessProbe") == ("/healthz", port)
    assert probe_target(spec, "readinessProbe") == ("/readyz", port)
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)


def test_pods_get_longer_to_stop_than_the_drain_grace(resources):
    config = find(resources, "ConfigMap", "ragbot")["data"]
    grace = float(config.get("RAGBOT_DRAIN_GRACE_S", DEFAULT_DRAIN_GRACE_S))
    for name in ("ragbot-app", "ragbot-worker"):
        pod = find(resources, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > grace, name


def test_kubernetes_redis_keeps_the_queue(resources):
    conf = redis_conf(find(resources, "ConfigMap", "redis")["data"]["redis.conf"])
    assert {k: conf.get(k) for k in REDIS_SETTINGS} == REDIS_SETTINGS
    assert conf.get("maxmemory", "0") not in ("0", "")
    redis = find(resources, "StatefulSet", "redis")
    spec = container(redis)
    assert spec["command"] == ["redis-server", "/etc/redis/redis.conf"]
    mounts = {m["mountPath"] for m in spec["volumeMounts"]}
    assert {"/etc/redis", conf["dir"]} <= mounts  # the AOF is on the persistent volume
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_compose_keeps_the_same_settings():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    flags = redis_flags(services["redis"]["command"])
    assert {k: flags.get(k) for k in REDIS_SETTINGS} == REDIS_SETTINGS
    assert flags.get("maxmemory", "0") != "0"
    assert "redis:/data" in services["redis"]["volumes"]
    for name in ("app", "worker"):
        service = services[name]
        env = service["environment"]
        port = env.get("RAGBOT_METRICS_PORT", METRICS_PORT)
        assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
        grace = float(env.get("RAGBOT_DRAIN_GRACE_S", DEFAULT_DRAIN_GRACE_S))
        assert int(service["stop_grace_period"].removesuffix("s")) > grace
    assert "--http" not in services["app"]["command"]  # Socket Mode: the exporter serves probes


def test_app_readiness_survives_a_redis_outage(unreachable_redis_url, tmp_path, monkeypatch):
    """/readyz stays 200 with Redis down: the app still takes events and says the queue is
    down, so Kubernetes must not take it out of the Service."""
    monkeypatch.chdir(tmp_path)
    runtime = build_runtime(BotSettings(_env_file=None, redis_url=unreachable_redis_url))
    runtime.health.set_ready()
    ready, body = runtime.health.ready()
    assert ready, body
    assert body["checks"]["redis"]["ok"] is False
    assert runtime.health.live()[0]
