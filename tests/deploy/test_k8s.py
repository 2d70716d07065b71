"""deploy/k8s: valid Kubernetes objects (offline schemas shipped in kubernetes-validate), settings
the service really reads, and the production posture the README promises."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service import settings as settings_module
from service.settings import PREFIX, Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The variable for a field is its name upper-cased, unless settings.ENV_NAMES says otherwise.
_RENAMED: dict[str, str] = getattr(settings_module, "ENV_NAMES", {})
SETTING_NAMES = {
    PREFIX + _RENAMED.get(f.name, f.name.upper()) for f in dataclasses.fields(Settings) if f.name != "extra"
}
KUBERNETES_VERSION = "1.30.0"  # the oldest version these manifests must work on


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


DOCUMENTS = _documents()


def _kind(kind: str) -> dict[str, Any]:
    (document,) = [d for _, d in DOCUMENTS if d["kind"] == kind]
    return document


def test_every_object_the_issue_asks_for_is_there() -> None:
    kinds = sorted(d["kind"] for _, d in DOCUMENTS)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Secret",
            "Secret",
            "Service",
        ]
    )
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[f"{n}:{d['kind']}" for n, d in DOCUMENTS])
def test_manifest_is_valid_against_the_kubernetes_schema(name: str, document: dict[str, Any]) -> None:
    # strict: an unknown or misspelt field is an error, not silently dropped by the API server.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_does_catch_mistakes() -> None:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _env_names() -> set[str]:
    names: set[str] = set()
    for _, document in DOCUMENTS:
        if document["kind"] in ("ConfigMap", "Secret"):
            names |= {
                k
                for k in {**document.get("data", {}), **document.get("stringData", {})}
                if k.startswith(PREFIX)
            }
    container = _kind("Deployment")["spec"]["template"]["spec"]["containers"][0]
    names |= {e["name"] for e in container.get("env", []) if e["name"].startswith(PREFIX)}
    return names


def test_every_setting_the_manifests_set_is_one_the_service_reads() -> None:
    names = _env_names()
    assert names, "the manifests set no TDM1_CDS_* at all?"
    assert names <= SETTING_NAMES, f"not read by service/settings.py: {sorted(names - SETTING_NAMES)}"
    assert {"TDM1_CDS_DATABASE_URL", "TDM1_CDS_PUBLIC_URL", "TDM1_CDS_ISSUERS"} <= names


def test_deployment_is_production_posture() -> None:
    deployment = _kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = " ".join(container.get("command", []) + container.get("args", []))
    assert "serve" in command and "--dev" not in command
    config = _kind("ConfigMap")["data"]
    assert config.get("TDM1_CDS_DEV", "false").lower() in ("0", "false", "no", "off")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert deployment["spec"]["replicas"] >= 2
    # The configured database is PostgreSQL: several replicas cannot share a SQLite file.
    database = _kind_named("Secret", "tdm1-cds-database")["stringData"]["TDM1_CDS_DATABASE_URL"]
    assert database.startswith("postgresql")
    # gunicorn must finish its graceful stop before the kubelet's SIGKILL.
    conf = (K8S.parent / "gunicorn.conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)", conf, re.M).group(1))  # type: ignore[union-attr]
    assert pod["terminationGracePeriodSeconds"] > graceful
    issuers_mount = next(m for m in container["volumeMounts"] if m["name"] == "issuers")
    assert config["TDM1_CDS_ISSUERS"].startswith(issuers_mount["mountPath"] + "/")


def _kind_named(kind: str, name: str) -> dict[str, Any]:
    (document,) = [d for _, d in DOCUMENTS if d["kind"] == kind and d["metadata"]["name"] == name]
    return document


def test_autoscaler_and_disruption_budget_target_the_deployment() -> None:
    labels = _kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == "tdm1-cds"
    assert _kind("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    for kind in ("PodDisruptionBudget", "Service"):
        selector = _kind(kind)["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items()


def test_network_policy_allows_only_dns_database_and_listed_servers() -> None:
    policy = _kind("NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ports = sorted((p["port"], p.get("protocol", "TCP")) for rule in policy["egress"] for p in rule["ports"])
    assert ports == [(53, "TCP"), (53, "UDP"), (443, "TCP"), (5432, "TCP")]
    for rule in policy["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert peer["ipBlock"]["cidr"] not in ("0.0.0.0/0", "::/0"), "egress to anywhere"


def test_secrets_are_templates_without_real_values() -> None:
    for name, document in DOCUMENTS:
        if document["kind"] != "Secret":
            continue
        assert "data" not in document, f"{name}: base64 data would hide a real value; use stringData"
        for key, value in document["stringData"].items():
            if key == "TDM1_CDS_ADMIN_TOKEN":
                assert value == ""
            else:
                assert "REPLACE_ME" in value, f"{name}: {key} looks like a real value"
