"""deploy/k8s: every manifest agrees with the code's ports, probes, config and secrets."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import build_parser
from services.core.config import EXAMPLE_CONFIG, MeshConfig, load_config
from services.core.server import LIVENESS

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
GRPC_SERVICES = ("registry", "gateway", "webhooks")


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_configmap() -> dict[str, str]:
    return by_kind("ConfigMap")["wedmesh-config"]["data"]


def defaults() -> MeshConfig:
    return load_config(EXAMPLE_CONFIG, environ={})


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_grpc_deployments_probe_the_standard_health_service_on_the_code_ports(name: str) -> None:
    """Readiness probes "" and liveness probes the liveness name on the service's numeric port."""
    config = defaults().grpc_server(name)
    spec = container(by_kind("Deployment")[f"wedmesh-{name}"])
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports == {"grpc": config.port, "metrics": config.metrics_port}
    assert spec["readinessProbe"]["grpc"] == {"port": config.port}
    assert spec["livenessProbe"]["grpc"] == {"port": config.port, "service": LIVENESS}
    assert build_parser().parse_args(spec["args"]).service == name


def test_shim_probes_healthz_and_readyz_on_its_port() -> None:
    """The shim is probed over HTTP on the configured port."""
    port = defaults().shim.port
    spec = container(by_kind("Deployment")["wedmesh-shim"])
    assert spec["ports"][0]["containerPort"] == port
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert build_parser().parse_args(spec["args"]).service == "shim"


def test_every_deployment_has_replicas_resources_pdb_and_a_grace_that_covers_the_drain() -> None:
    """2+ replicas, requests and limits, a PDB, and termination grace > drain delay + grace."""
    env = env_configmap()
    drain = float(env["WEDMESH_SHUTDOWN__DRAIN_DELAY_S"]) + float(env["WEDMESH_SHUTDOWN__GRACE_S"])
    pdbs = by_kind("PodDisruptionBudget")
    deployments = by_kind("Deployment")
    assert set(deployments) == {f"wedmesh-{n}" for n in (*GRPC_SERVICES, "shim")}
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        assert spec["replicas"] >= 2, name
        resources = container(deployment)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
            resources["limits"]
        )
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > drain, name
        assert pdbs[name]["spec"]["selector"] == spec["selector"], name


def test_services_target_named_container_ports() -> None:
    """Each Service selects its Deployment's pods and targets ports the container declares."""
    deployments = by_kind("Deployment")
    for name, service in by_kind("Service").items():
        deployment = deployments[name]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        declared = {p["name"] for p in container(deployment)["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= declared


def test_config_and_secret_references_exist_and_validate(tmp_path: Path) -> None:
    """envFrom names exist, the ConfigMap's overrides validate, and the TOML file mounts."""
    configmaps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    for deployment in by_kind("Deployment").values():
        for source in container(deployment)["envFrom"]:
            ref = source.get("configMapRef") or source.get("secretRef")
            assert ref["name"] in (configmaps if "configMapRef" in source else secrets)
        (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
        assert volume["configMap"]["name"] in configmaps
    env = {k: v for k, v in env_configmap().items() if k != "WEDMESH_CONFIG"}
    config = load_config(EXAMPLE_CONFIG, environ=env)
    assert config.gateway.host == "0.0.0.0"
    file_text = configmaps["wedmesh-config-file"]["data"]["wedmesh.toml"]
    mounted = tmp_path / "wedmesh.toml"
    mounted.write_text(file_text)
    load_config(mounted, environ={})
    assert env_configmap()["WEDMESH_CONFIG"].endswith("/wedmesh.toml")


def secret_variables(node: Any) -> set[str]:
    """Every environment variable the example config names (keys ending in _env)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_env") and isinstance(value, str):
                found.add(value)
            found |= secret_variables(value)
    elif isinstance(node, list):
        for item in node:
            found |= secret_variables(item)
    return found


def test_secret_example_carries_every_variable_the_config_names() -> None:
    """Each `*_env` variable of the example config (and REDIS_URL) is a key of the Secret."""
    named = secret_variables(tomllib.loads(EXAMPLE_CONFIG.read_text())) | {"REDIS_URL"}
    keys = set(by_kind("Secret")["wedmesh-secrets"]["stringData"])
    assert named <= keys, f"missing from secret.example.yaml: {sorted(named - keys)}"
