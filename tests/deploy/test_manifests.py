"""The Kubernetes manifests: they render, every object validates against its schema, every
ORDERFLOW_ variable is a real setting with a valid value, and the pieces agree with each other
(probes, ports, grace period, security, secrets, scaling bounds, monitoring)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import yaml
from deploy_support import DEPLOY, KUSTOMIZATIONS, only, render

from orderflow.config.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings

# The Kubernetes minor version the manifests are validated against (kubernetes-validate ships
# the schemas); the oldest one we claim to support.
KUBERNETES_VERSION = "1.29"

# Variables that carry credentials: only ever from a Secret.
CREDENTIALS = {
    "ORDERFLOW_ZAKEKE__CLIENT_ID", "ORDERFLOW_ZAKEKE__CLIENT_SECRET", "ORDERFLOW_SMAKE__API_KEY",
    "ORDERFLOW_REEVOO__API_KEY", "ORDERFLOW_REEVOO__API_SECRET", "ORDERFLOW_REEVOO__TRKREF",
    "ORDERFLOW_KAFKA__SASL_USERNAME", "ORDERFLOW_KAFKA__SASL_PASSWORD",
}
VENDOR_CREDENTIALS = {name for name in CREDENTIALS if "KAFKA" not in name}


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "orderflow")


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return dict(only(objects, "ConfigMap")["data"])


def test_render_has_every_object(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    kinds = sorted(o["kind"] for o in objects)
    for kind in ("ConfigMap", "Deployment", "PodDisruptionBudget", "PrometheusRule", "ScaledObject",
                 "Service", "ServiceAccount", "ServiceMonitor"):
        assert kind in kinds
    assert "Secret" not in kinds, "credentials are referenced, never shipped in the manifests"


# ------------------------------------------------------------------------------- schemas

def _crd_models() -> dict[tuple[str, str], type[pydantic.BaseModel]]:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
    from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor
    from strimzi_models import KafkaTopic, KafkaUser

    return {
        ("kafka.strimzi.io/v1beta2", "KafkaTopic"): KafkaTopic,
        ("kafka.strimzi.io/v1beta2", "KafkaUser"): KafkaUser,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
        ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): TriggerAuthentication,
    }


def test_every_object_validates(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Built-in kinds against the Kubernetes OpenAPI schema (strict: unknown fields fail);
    CRD kinds against models generated from the KEDA and Prometheus Operator CRDs, where an
    unknown or mistyped field is one that does not survive the round trip."""
    _, objects = rendered
    crds = _crd_models()
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            continue
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name} is invalid at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            pass
        model = crds.get((obj["apiVersion"], obj["kind"]))
        assert model is not None, f"{name}: no schema for {obj['apiVersion']} {obj['kind']}"
        try:
            parsed = model.model_validate(obj)
        except pydantic.ValidationError as exc:
            pytest.fail(f"{name} does not match its CRD: {exc}")
        assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == obj, (
            f"{name} has fields its CRD does not define, or values of the wrong type")


def test_validation_rejects_what_it_should() -> None:
    """The two validators above are not vacuous: a misspelt field fails each of them."""
    objects = render("base")
    deployment = yaml.safe_load(yaml.safe_dump(only(objects, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = yaml.safe_load(yaml.safe_dump(only(objects, "ScaledObject")))
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    model = _crd_models()[("keda.sh/v1alpha1", "ScaledObject")]
    assert model.model_validate(scaled).model_dump(mode="json", by_alias=True,
                                                   exclude_unset=True) != scaled


# ------------------------------------------------------------------------------- settings

def _field_path_exists(name: str) -> bool:
    path = name.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED_DELIMITER.lower())
    model: type[pydantic.BaseModel] = Settings
    for depth, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        last = depth == len(path) - 1
        is_model = isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)
        if last:
            return not is_model
        if not is_model:
            return False
        model = annotation  # type: ignore[assignment]  # a BaseModel subclass, checked above
    return False


def _orderflow_names(objects: list[dict[str, Any]]) -> set[str]:
    text = yaml.safe_dump_all(objects)
    return set(re.findall(r"\bORDERFLOW_[A-Z0-9_]+", text))


def test_every_orderflow_variable_is_a_setting(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = rendered
    names = _orderflow_names(objects) | set(config(objects))
    # The ConfigMap keys, the env entries, and any ORDERFLOW_ word in comments-free YAML.
    assert names, "no ORDERFLOW_ variables found"
    unknown = sorted(n for n in names if not _field_path_exists(n))
    assert not unknown, f"{name}: not settings of orderflow.config.settings: {unknown}"
    assert not _field_path_exists("ORDERFLOW_KAFKA__NO_SUCH_THING")
    assert not _field_path_exists("ORDERFLOW_KAFKA")  # a group, not a value


def test_settings_load_from_the_manifests(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The service's own settings loader accepts the ConfigMap as it is (with placeholder
    values for what comes from Secrets): a wrong value would stop every pod with exit 2."""
    name, objects = rendered
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env.update(config(objects))
    for entry in container(objects).get("env", []):
        if "valueFrom" in entry:
            env[entry["name"]] = "placeholder-from-secret"
    cafile = env.get("ORDERFLOW_KAFKA__SSL_CAFILE")
    if cafile:
        # The loader checks the file is readable: in the pod it is a mounted Secret. Check the
        # mount is there, then stand a file in for it.
        mounts = [m["mountPath"] for m in container(objects).get("volumeMounts", [])]
        assert any(cafile.startswith(path.rstrip("/") + "/") for path in mounts), (
            f"{name}: {cafile} is not under a volume mount of the container")
        with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as stand_in:
            stand_in.write("-----BEGIN CERTIFICATE-----\n")
        env["ORDERFLOW_KAFKA__SSL_CAFILE"] = stand_in.name
    result = subprocess.run(
        [sys.executable, "-c",
         "from orderflow.config.settings import load_settings; load_settings()"],
        env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{name}: settings rejected:\n{result.stderr}"


def test_credentials_only_from_secrets(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = rendered
    data = config(objects)
    assert not CREDENTIALS & set(data), f"{name}: credentials in the ConfigMap"
    env = {e["name"]: e for e in container(objects).get("env", [])}
    for variable in VENDOR_CREDENTIALS:
        assert variable in env, f"{name}: {variable} is not provided"
        assert set(env[variable]) == {"name", "valueFrom"}, f"{name}: {variable} is a literal"
        assert "secretKeyRef" in env[variable]["valueFrom"]
    for entry in env.values():
        if entry["name"] in CREDENTIALS:
            assert "value" not in entry
    if data.get("ORDERFLOW_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT").startswith("SASL"):
        assert "secretKeyRef" in env["ORDERFLOW_KAFKA__SASL_PASSWORD"]["valueFrom"]


# ------------------------------------------------------------------------------- the pod

def test_deployment_runs_the_service_safely(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = rendered
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(objects)
    data = config(objects)
    if "replicas" in deployment["spec"]:
        assert deployment["spec"]["replicas"] == 3

    # Probes on the contract's endpoints, on the port the service listens on.
    port = int(data.get("ORDERFLOW_HTTP__PORT", Settings().http.port))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == port
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["args"] == ["run"]

    # The pod outlives the service's own drain by a margin for the final commit.
    grace = float(data.get("ORDERFLOW_SHUTDOWN_GRACE_S", Settings().shutdown_grace_s))
    assert pod["terminationGracePeriodSeconds"] >= grace + 10

    # Restricted pod security: non-root, read-only root, no escalation, no capabilities.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    # Kubernetes' service-link variables for a Service named orderflow look like settings.
    assert pod["enableServiceLinks"] is False

    # A read-only root needs a writable /tmp.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    # Requests and a memory limit, so the scheduler and the OOM killer know what to expect.
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert "memory" in c["resources"]["limits"]

    # A fixed image tag.
    image = c["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    if name == "example":
        assert image != container(render("base"))["image"], "the overlay's image was not applied"

    # The ConfigMap the pod reads is the one rendered (kustomize's hashed name).
    refs = [e["configMapRef"]["name"] for e in c["envFrom"] if "configMapRef" in e]
    assert refs == [only(objects, "ConfigMap")["metadata"]["name"]]


def test_selectors_agree(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The Service, PDB and ServiceMonitor all find the Deployment's pods, on the named port."""
    _, objects = rendered
    labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = only(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    monitor = only(objects, "ServiceMonitor")
    service_labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    # The rules and the dashboard select job="orderflow": the ServiceMonitor must produce it.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "orderflow"


def test_autoscaling_matches_the_service(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """KEDA scales on the group and topic the service actually uses, on the same cluster, and
    never beyond the input topic's partitions."""
    name, objects = rendered
    scaled = only(objects, "ScaledObject")
    deployment = only(objects, "Deployment")
    data = config(objects)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    partitions = int(scaled["metadata"]["annotations"]["orderflow/input-topic-partitions"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
    if "replicas" in deployment["spec"]:
        assert spec["minReplicaCount"] <= deployment["spec"]["replicas"] <= spec["maxReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == data["ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS"]
    assert meta["consumerGroup"] == data.get("ORDERFLOW_KAFKA__GROUP_ID", Settings().kafka.group_id)
    assert meta["topic"] == data.get("ORDERFLOW_TOPICS__ORDERS_CREATED",
                                     Settings().topics.orders_created)
    assert meta["allowIdleConsumers"] == "false"
    protocol = data.get("ORDERFLOW_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    assert (meta.get("tls") == "enable") == protocol.endswith("SSL"), name
    if protocol.startswith("SASL"):
        keda_word = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
                     "SCRAM-SHA-512": "scram_sha512"}
        assert meta["sasl"] == keda_word[data["ORDERFLOW_KAFKA__SASL_MECHANISM"]]
        auth = only(objects, "TriggerAuthentication")
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        assert {"username", "password"} <= {r["parameter"] for r in auth["spec"]["secretTargetRef"]}


def test_prometheusrule_is_the_rules_file(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The rules file as it is, but for the links an overlay points elsewhere."""
    _, objects = rendered
    rules = yaml.safe_load((DEPLOY / "prometheus" / "orderflow.rules.yml").read_text())

    def without_links(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for group in groups:
            for rule in group["rules"]:
                for link in ("runbook_url", "dashboard_url"):
                    rule.get("annotations", {}).pop(link, None)
        return groups

    assert without_links(only(objects, "PrometheusRule")["spec"]["groups"]) == without_links(
        rules["groups"])


def test_prometheusrule_file_is_generated() -> None:
    script = DEPLOY / "prometheus" / "prometheusrule.py"
    result = subprocess.run([sys.executable, str(script), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_settings_named_in_the_docs_exist() -> None:
    """The runbook, the README (with the deploy guide), the rules and the dashboard name settings an
    operator will set: each must be real (`<VENDOR>` stands for each vendor)."""
    sources = [DEPLOY.parent / "docs" / "runbook.md", DEPLOY.parent / "docs" / "deploy.md",
               DEPLOY.parent / "docs" / "configuration.md",
               DEPLOY.parent / "README.md", DEPLOY / "prometheus" / "orderflow.rules.yml",
               DEPLOY / "grafana" / "orderflow.json"]
    sources = [s for s in sources if s.exists()]
    checked = 0
    for source in sources:
        for name in set(re.findall(r"ORDERFLOW_[A-Z0-9_<>]*[A-Z0-9>]", source.read_text())):
            for vendor in ("ZAKEKE", "SMAKE", "REEVOO"):
                expanded = name.replace("<VENDOR>", vendor)
                assert _field_path_exists(expanded), f"{source.name}: {name} is not a setting"
                checked += 1
    assert checked > 10


def test_alert_links_are_absolute_and_set_by_the_overlay() -> None:
    """runbook_url and dashboard_url are absolute URLs an on-call engineer can click, and an
    overlay points them at its own runbook and dashboard (the base's kustomize replacement)
    while each runbook_url keeps its section."""
    for name, base in (("base", "https://github.com/your-org/orderflow/blob/main/docs/runbook.md"),
                       ("example", "https://git.example.com/shop/orderflow/blob/main/docs/runbook.md")):
        objects = render(name)
        assert not [o for o in objects if o["metadata"]["name"] == "orderflow-links"]
        [rule] = [o for o in objects if o["kind"] == "PrometheusRule"]
        alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
        for alert in alerts:
            links = alert["annotations"]
            assert links["runbook_url"] == f"{base}#{alert['alert'].lower()}", name
            assert links["dashboard_url"].startswith("https://grafana.example.com/d/orderflow-overview")
