"""deploy/: every Kubernetes manifest is valid against the schemas `kubernetes-validate` ships
(offline), and the manifests keep the contract README's "Kubernetes" section states: two
replicas on PostgreSQL, readiness and liveness on /healthz, a PodDisruptionBudget, the tokens in
a Secret holding only placeholders, the policy in a ConfigMap mounted so it updates in place
(and reloaded on change), a grace period longer than gunicorn's graceful stop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes

from app.policy_check import check_policy_file

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
#: A release the package ships schemas for (they are in the wheel: no network).
KUBERNETES_VERSION = "1.31.0"
#: Files kustomize reads, not the API server: no Kubernetes schema describes them.
NOT_KUBERNETES = {"kustomization.yaml"}


def manifests() -> dict[str, dict[str, Any]]:
    """Every resource in deploy/, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name not in NOT_KUBERNETES:
            for document in yaml.safe_load_all(path.read_text()):
                found[document["kind"] + ("/" + document["metadata"]["name"])] = document
    return found


def one(kind: str) -> dict[str, Any]:
    """The one resource of this kind (`Kind`, or `Kind/name` when there are several)."""
    found = manifests()
    if "/" in kind:
        return found[kind]
    (resource,) = [r for key, r in found.items() if key.startswith(kind + "/")]
    return resource


@pytest.mark.parametrize("name", sorted(manifests()))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(name: str) -> None:
    kubernetes.validate(manifests()[name], KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_caught() -> None:
    broken = one("Deployment")
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes.ValidationError):
        kubernetes.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in DEPLOY.glob("*.yaml")} - NOT_KUBERNETES
    assert sorted(listed) == sorted(files)


def test_two_replicas_ready_and_alive_on_healthz_with_a_grace_period_longer_than_gunicorns() -> (
    None
):
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["serve", "--http"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert port == 3000
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    graceful = re.search(r'"graceful_timeout", (\d+)', (ROOT / "app/web.py").read_text())
    assert graceful is not None
    assert pod["terminationGracePeriodSeconds"] > int(graceful.group(1))
    assert container["resources"]["requests"].keys() == {"cpu", "memory"}
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user


def test_a_disruption_budget_keeps_one_replica() -> None:
    budget = one("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_secret_holds_only_placeholders_and_the_database_is_postgresql() -> None:
    secret = one("Secret")
    assert "data" not in secret  # base64 would hide a real value from review
    values = secret["stringData"]
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL"} <= values.keys()
    for name, value in values.items():
        assert re.search(r"<[a-z0-9-]+>", value), f"{name} is not a placeholder"
        assert not re.search(r"xox[bap]-\d|xapp-\d", value), f"{name} looks like a real token"
    assert values["DATABASE_URL"].startswith("postgresql://")
    container = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    refs = [source.get("secretRef", {}).get("name") for source in container["envFrom"]]
    assert secret["metadata"]["name"] in refs


def test_the_policy_configmap_is_mounted_in_place_reloaded_on_change_and_passes_policy_check(
    tmp_path: Path,
) -> None:
    policy = one("ConfigMap/prod-access-policy")
    settings = one("ConfigMap/prod-access-settings")["data"]
    pod = one("Deployment")["spec"]["template"]["spec"]
    (volume,) = [
        v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "prod-access-policy"
    ]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount  # a subPath mount is never updated
    assert settings["POLICY_FILE"] == mount["mountPath"] + "/policy.yml"
    assert settings["POLICY_RELOAD_ON_CHANGE"] == "true"
    written = tmp_path / "policy.yml"
    written.write_text(policy["data"]["policy.yml"])
    findings = check_policy_file(written)
    assert findings == [], "\n".join(map(str, findings))
    needed = set(re.findall(r"_env: (\w+)", policy["data"]["policy.yml"]))
    assert needed <= one("Secret")["stringData"].keys()
