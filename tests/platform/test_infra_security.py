"""Static checks of the production infra's security: each component gets only the secrets it
uses, nothing starts on a "change-me" placeholder, Prefect's API needs its login, MinIO
users reach only their own bucket, and NetworkPolicies admit exactly each server's clients.

Docker and a cluster are not available here: the manifests are read as data, and the two
shell scripts that guard secrets (infra/check-secrets.sh, infra/k8s/create-secrets.sh) are run.

Over 400 lines on purpose: every security property of the infra files (binds, secrets, roles,
policies) is checked in one place.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S = INFRA / "k8s"

# Which Secrets each workload may see (Kubernetes), by pod.
K8S_SECRETS = {
    "postgres": {"postgres-admin", "mlflow-db", "prefect-db", "registry-lock-db"},
    "minio": {"minio-root"},
    "minio-setup": {"minio-root", "mlflow-s3", "pipeline-s3"},
    "mlflow": {"mlflow-db", "mlflow-s3", "mlflow-admin", "mlflow-flask"},
    "mlflow-users": {"mlflow-admin", "mlflow-pipeline-login"},
    "prefect-server": {"prefect-db", "prefect-auth"},
    "prefect-worker": {"prefect-auth"},
    "flow-run": {"pipeline-s3", "mlflow-pipeline-login", "registry-lock-db", "prefect-auth"},
    "regionops-train": {"pipeline-s3", "mlflow-pipeline-login"},
}
# Which secret variables of infra/.env each compose service may read.
COMPOSE_SECRETS = {
    "postgres": {
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "MLFLOW_DB_PASSWORD",
        "PREFECT_DB_PASSWORD",
        "REGIONOPS_LOCK_DB_PASSWORD",
    },
    "minio": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"},
    "minio-setup": {
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "MLFLOW_S3_ACCESS_KEY",
        "MLFLOW_S3_SECRET_KEY",
        "PIPELINE_S3_ACCESS_KEY",
        "PIPELINE_S3_SECRET_KEY",
    },
    "mlflow": {
        "MLFLOW_DB_PASSWORD",
        "MLFLOW_S3_ACCESS_KEY",
        "MLFLOW_S3_SECRET_KEY",
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    },
    "mlflow-users": {
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "PIPELINE_MLFLOW_USERNAME",
        "PIPELINE_MLFLOW_PASSWORD",
    },
    "prefect-server": {"PREFECT_DB_PASSWORD", "PREFECT_API_AUTH_STRING"},
    "prefect-worker": {
        "PIPELINE_MLFLOW_USERNAME",
        "PIPELINE_MLFLOW_PASSWORD",
        "PIPELINE_S3_ACCESS_KEY",
        "PIPELINE_S3_SECRET_KEY",
        "REGIONOPS_LOCK_DB_PASSWORD",
        "PREFECT_API_AUTH_STRING",
    },
}
# Who may open a connection to which server (port): everything else is denied.
CLIENTS = {
    ("postgres", 5432): {"mlflow", "prefect-server", "flow-run"},
    ("minio", 9000): {"mlflow", "minio-setup", "flow-run", "regionops-train"},
    ("mlflow", 5000): {"mlflow-users", "flow-run", "regionops-train"},
    ("prefect-server", 4200): {"prefect-worker", "flow-run"},
}


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _secret_variables() -> set[str]:
    """The variables of .env.example that hold credentials (everything above the regionops side)."""
    text = (INFRA / ".env.example").read_text().split("# regionops side")[0]
    return {
        line.split("=", 1)[0]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }


# ---------- Kubernetes: workloads and their Secrets ----------


def _documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _flow_run_pod() -> dict:
    template = json.loads((K8S / "prefect-work-pool.json").read_text())
    return template["job_configuration"]["job_manifest"]["spec"]["template"]


def _pods() -> dict[str, dict]:
    """Every pod template by the name its labels give it (app.kubernetes.io/name, or component)."""
    pods = {}
    for doc in _documents():
        if doc["kind"] in ("Deployment", "Job"):
            template = doc["spec"]["template"]
            pods[template["metadata"]["labels"]["app.kubernetes.io/name"]] = template
    pods["flow-run"] = _flow_run_pod()
    return pods


def _labels(pod: dict) -> dict[str, str]:
    return pod["metadata"]["labels"]


def _secret_refs(container: dict) -> set[tuple[str, str | None]]:
    """(Secret, key) pairs a container reads; key None: the whole Secret (envFrom)."""
    refs = {
        (source["secretRef"]["name"], None)
        for source in container.get("envFrom", [])
        if "secretRef" in source
    }
    env = container.get("env", [])
    for var in (
        env if isinstance(env, list) else []
    ):  # the work pool's "{{ env }}": the deployment's, no Secret
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            refs.add((ref["name"], ref["key"]))
    return refs


def _pod_secrets(pod: dict) -> set[str]:
    spec = pod["spec"]
    return {
        name
        for c in spec.get("initContainers", []) + spec["containers"]
        for name, _ in _secret_refs(c)
    }


def _create_secrets_table() -> dict[str, dict[str, str]]:
    """create-secrets.sh's table: Secret -> {key the pods read: variable of infra/.env}."""
    script = (K8S / "create-secrets.sh").read_text()
    table = re.search(r"SECRETS='\n(.*?)\n'", script, re.DOTALL).group(1)
    out = {}
    for line in table.splitlines():
        name, *pairs = line.split()
        out[name] = dict(pair.split("=", 1) for pair in pairs)
    return out


def test_each_pod_gets_only_the_secrets_it_uses():
    pods = _pods()
    assert set(pods) == set(K8S_SECRETS), set(pods) ^ set(K8S_SECRETS)
    for name, pod in pods.items():
        assert _pod_secrets(pod) == K8S_SECRETS[name], f"{name}: {sorted(_pod_secrets(pod))}"
    everything = json.dumps(_documents()) + (K8S / "prefect-work-pool.json").read_text()
    assert "regionops-secrets" not in everything, "a pod still reads the all-in-one Secret"


def test_every_secret_key_a_pod_reads_is_made_by_create_secrets():
    table = _create_secrets_table()
    for name, pod in _pods().items():
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            for secret, key in _secret_refs(container):
                assert secret in table, (
                    f"{name} reads Secret {secret}, which create-secrets.sh does not make"
                )
                assert key is None or key in table[secret], (
                    f"{name} reads {secret}/{key}: no such key"
                )
    assert set(table) == set().union(*K8S_SECRETS.values()), (
        "create-secrets.sh makes a Secret no pod reads"
    )
    assert {v for keys in table.values() for v in keys.values()} == _secret_variables()


def test_no_secret_is_shared_beyond_its_clients():
    """The root and admin credentials stay with their server (and its setup); flow runs hold none of them."""
    for secret in ("postgres-admin", "minio-root", "mlflow-admin"):
        holders = {pod for pod, secrets in K8S_SECRETS.items() if secret in secrets}
        assert "flow-run" not in holders and "regionops-train" not in holders, (secret, holders)
    assert len({pod for pod, secrets in K8S_SECRETS.items() if "postgres-admin" in secrets}) == 1


def test_every_pod_with_secrets_checks_them_for_placeholders_first():
    config = {d["metadata"]["name"]: d for d in _documents() if d["kind"] == "ConfigMap"}
    assert (
        config["check-secrets"]["data"]["check-secrets.sh"]
        == (INFRA / "check-secrets.sh").read_text()
    )
    for name, pod in _pods().items():
        spec = pod["spec"]
        first = (spec.get("initContainers") or [{}])[0]
        assert first.get("name") == "check-secrets", (
            f"{name}: no check-secrets init container first"
        )
        assert first["command"] == ["sh", "/checks/check-secrets.sh"]
        mount = next(m for m in first["volumeMounts"] if m["mountPath"] == "/checks")
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == "check-secrets"
        for container in spec["containers"]:
            assert _secret_refs(container) <= _secret_refs(first), (
                f"{name}/{container['name']}: unchecked secrets"
            )


def test_config_maps_carry_the_infra_scripts_verbatim():
    config = {d["metadata"]["name"]: d["data"] for d in _documents() if d["kind"] == "ConfigMap"}
    assert config["postgres-init"]["10-databases.sql"] == (INFRA / "postgres-init.sql").read_text()
    assert config["postgres-init"]["20-roles.sh"] == (INFRA / "postgres-roles.sh").read_text()
    for name in ("setup.sh", "mlflow-policy.json", "dvc-policy.json"):
        assert config["minio-setup"][name] == (INFRA / "minio" / name).read_text(), name


# ---------- the placeholder guards, run ----------


def _run_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(INFRA / "check-secrets.sh")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_secrets_refuses_a_placeholder_and_names_it_without_its_value():
    refused = _run_check(
        {
            "POSTGRES_PASSWORD": "change-me",
            "MINIO_ROOT_PASSWORD": "change-me-minio-root",
            "MLFLOW_DB_PASSWORD": "s3cret-value",
        }
    )
    assert refused.returncode == 1
    assert "POSTGRES_PASSWORD" in refused.stderr and "MINIO_ROOT_PASSWORD" in refused.stderr
    assert "MLFLOW_DB_PASSWORD" not in refused.stderr and "s3cret-value" not in refused.stderr
    assert "change-me-minio-root" not in refused.stderr
    accepted = _run_check({"POSTGRES_PASSWORD": "Zq8-real", "NOTE": "do not change-me"})
    assert accepted.returncode == 0, accepted.stderr


def test_every_placeholder_in_env_example_would_be_refused():
    placeholders = {
        k: v
        for k, v in _env_example().items()
        if k in _secret_variables() and v.startswith("change-me")
    }
    secret_like = {k for k in _secret_variables() if re.search(r"PASSWORD|SECRET|AUTH_STRING", k)}
    assert secret_like <= set(placeholders), (
        f"shipped with a usable value: {secret_like - set(placeholders)}"
    )
    refused = _run_check(placeholders)
    assert refused.returncode == 1 and all(k in refused.stderr for k in placeholders)


@pytest.fixture
def fake_kubectl(tmp_path):
    """A ``kubectl`` that records its arguments (and swallows the manifest piped to ``apply``)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "kubectl.calls"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\ncase "$*" in *apply*) cat > /dev/null ;; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir, calls


def _create_secrets(env_file: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(K8S / "create-secrets.sh"), str(env_file)],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_create_secrets_refuses_placeholders_before_touching_the_cluster(tmp_path, fake_kubectl):
    bin_dir, calls = fake_kubectl
    refused = _create_secrets(INFRA / ".env.example", bin_dir)
    assert refused.returncode == 1 and "MINIO_ROOT_PASSWORD" in refused.stderr
    assert not calls.exists(), "kubectl ran although a secret was a placeholder"


def test_create_secrets_makes_one_secret_per_scope_from_the_env_file(tmp_path, fake_kubectl):
    bin_dir, calls = fake_kubectl
    env = {
        k: (f"real-{k.lower()}" if k in _secret_variables() else v)
        for k, v in _env_example().items()
    }
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in env.items()) + "\n")
    made = _create_secrets(env_file, bin_dir)
    assert made.returncode == 0, made.stderr
    created = {}
    for line in calls.read_text().splitlines():
        words = line.split()
        if "create" in words:
            name = words[words.index("generic") + 1]
            created[name] = dict(
                w[len("--from-literal=") :].split("=", 1)
                for w in words
                if w.startswith("--from-literal=")
            )
    assert set(created) == set().union(*K8S_SECRETS.values())
    assert created["pipeline-s3"] == {
        "AWS_ACCESS_KEY_ID": "real-pipeline_s3_access_key",
        "AWS_SECRET_ACCESS_KEY": "real-pipeline_s3_secret_key",
    }
    assert created["registry-lock-db"] == {"PGPASSWORD": "real-regionops_lock_db_password"}


# ---------- compose ----------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def _compose_reads(service: dict) -> set[str]:
    text = json.dumps({k: service.get(k) for k in ("environment", "command", "entrypoint")})
    return set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))


def test_compose_gives_each_service_only_the_secrets_it_uses(compose):
    secrets = _secret_variables()
    services = compose["services"]
    for name, expected in COMPOSE_SECRETS.items():
        assert _compose_reads(services[name]) & secrets == expected, name
    # the check sees every secret; every other service reads only what the table grants
    assert _compose_reads(services["secrets-check"]) >= secrets - {
        "POSTGRES_USER",
        "MINIO_ROOT_USER",
        "MLFLOW_S3_ACCESS_KEY",
        "PIPELINE_S3_ACCESS_KEY",
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "PIPELINE_MLFLOW_USERNAME",
    }
    assert set(services) == set(COMPOSE_SECRETS) | {"secrets-check"}


def test_no_compose_service_starts_before_the_placeholder_check(compose):
    services = compose["services"]
    check = services["secrets-check"]
    assert check["entrypoint"] == ["sh", "/checks/check-secrets.sh"]
    assert "./check-secrets.sh:/checks/check-secrets.sh:ro" in check["volumes"]

    def waits_for_check(name: str, seen: frozenset = frozenset()) -> bool:
        depends = services[name].get("depends_on", {})
        if depends.get("secrets-check", {}).get("condition") == "service_completed_successfully":
            return True
        return any(waits_for_check(dep, seen | {name}) for dep in depends if dep not in seen)

    for name in set(services) - {"secrets-check"}:
        assert waits_for_check(name), f"{name} can start before secrets-check"


def test_prefect_api_needs_its_login_and_every_client_sends_it(compose):
    services = compose["services"]
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"].startswith(
        "${PREFECT_API_AUTH_STRING"
    )
    assert (
        services["prefect-worker"]["environment"]["PREFECT_API_AUTH_STRING"]
        == "${PREFECT_API_AUTH_STRING}"
    )
    pods = _pods()
    server_env = {v["name"]: v for v in pods["prefect-server"]["spec"]["containers"][0]["env"]}
    assert server_env["PREFECT_SERVER_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"] == {
        "name": "prefect-auth",
        "key": "PREFECT_API_AUTH_STRING",
    }
    assert "PREFECT_API_AUTH_STRING" in _create_secrets_table()["prefect-auth"]
    for client in ("prefect-worker", "flow-run"):
        assert "prefect-auth" in _pod_secrets(pods[client]), client


# ---------- MinIO: a user per client, its own bucket only ----------


def test_minio_users_reach_only_their_own_bucket():
    destinations = {"mlflow": "regionops-mlflow", "dvc": "regionops-dvc"}
    for name, bucket in destinations.items():
        policy = json.loads((INFRA / "minio" / f"{name}-policy.json").read_text())
        resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
        assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}, name
        actions = {a for statement in policy["Statement"] for a in statement["Action"]}
        assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
        assert not any(a.startswith(("s3:PutBucketPolicy", "s3:DeleteBucket")) for a in actions)
    setup = (INFRA / "minio" / "setup.sh").read_text()
    assert 'attach regionops-mlflow-rw "$MLFLOW_S3_ACCESS_KEY"' in setup
    assert 'attach regionops-dvc-rw "$PIPELINE_S3_ACCESS_KEY"' in setup
    # what each user writes to is its own bucket
    mlflow = " ".join(_pods()["mlflow"]["spec"]["containers"][0]["args"])
    assert "--artifacts-destination s3://regionops-mlflow/" in mlflow
    config = next(
        d
        for d in _documents()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "regionops-config"
    )
    assert config["data"]["REGIONOPS_DVC_REMOTE"].startswith("s3://regionops-dvc/")


# ---------- NetworkPolicies ----------


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value, operator = labels.get(expression["key"]), expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and expression["key"] not in labels:
            return False
        if operator == "DoesNotExist" and expression["key"] in labels:
            return False
    return True


def _admits(
    policies: list[dict], client: dict[str, str], server: dict[str, str], port: int
) -> bool:
    for policy in policies:
        if not _selects(policy["spec"]["podSelector"], server):
            continue
        for rule in policy["spec"].get("ingress") or []:
            ports = {p.get("port") for p in rule.get("ports") or []}
            peers = rule.get("from")
            if ports and port not in ports:
                continue
            if peers is None or any(
                "podSelector" in peer
                and "namespaceSelector" not in peer
                and _selects(peer["podSelector"], client)
                for peer in peers
            ):
                return True
    return False


def test_network_policies_admit_exactly_the_clients_of_each_server():
    policies = [d for d in _documents() if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"], "no default-deny ingress policy"
    pods = _pods()
    for (server, port), clients in CLIENTS.items():
        for name, pod in pods.items():
            allowed = _admits(policies, _labels(pod), _labels(pods[server]), port)
            assert allowed == (name in clients), (
                f"{name} -> {server}:{port}: {'allowed' if allowed else 'denied'}"
            )
    # servers nobody should reach are reached by nobody
    for name, pod in pods.items():
        for target in (
            "prefect-worker",
            "minio-setup",
            "mlflow-users",
            "flow-run",
            "regionops-train",
        ):
            assert not any(
                _admits(policies, _labels(pod), _labels(pods[target]), port)
                for port in (5432, 9000, 5000, 4200)
            ), f"{name} -> {target}"
