"""Static checks of the production profile (infra/): compose, Kubernetes manifests, env example, settings.

Docker and a cluster are not available here, so the files are checked for what can be
checked without them: compose references resolve, every Kubernetes object validates
against the Kubernetes JSON schemas (kubernetes-validate ships them; no network), the
Prefect work pool's job template renders to a valid Job, and ``.env.example`` names every
variable the settings layer reads.

Over 400 lines on purpose: the static checks of every infra file share their parsers and the
rendered manifests.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from components import settings as settings_module
from components.settings import ENV_VARS, SettingsError, get_settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S = INFRA / "k8s"
K8S_VERSION = "1.31.0"  # the oldest Kubernetes release the manifests target


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# ---------- compose ----------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def test_compose_services_reference_defined_volumes_networks_and_services(compose):
    volumes, networks, services = (
        set(compose["volumes"]),
        set(compose["networks"]),
        compose["services"],
    )
    assert {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker"} <= set(services)
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount["source"]
            if source.startswith((".", "/")):  # a bind mount: the file or folder must be in infra/
                assert (INFRA / source).resolve().exists(), (
                    f"{name}: bind mount {source} is missing"
                )
            else:
                assert source in volumes, f"{name}: volume {source!r} is not defined at top level"
        if service.get("network_mode") == "none":  # needs no network at all (secrets-check)
            continue
        assert service.get("networks"), f"{name}: joins no network"
        for network in service["networks"]:
            assert network in networks, f"{name}: network {network!r} is not defined at top level"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name}: depends on unknown service {dependency!r}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (
                f"{name}: port {port} is not bound to 127.0.0.1"
            )
    used = {
        m.split(":", 1)[0]
        for s in services.values()
        for m in s.get("volumes", [])
        if isinstance(m, str)
    }
    assert volumes <= used, f"volumes defined but unused: {volumes - used}"


def test_compose_runs_mlflow_and_prefect_on_postgres_and_s3(compose):
    services = compose["services"]
    mlflow = " ".join(services["mlflow"]["command"])
    assert '--backend-store-uri "postgresql://' in mlflow
    assert "--artifacts-destination s3://" in mlflow
    assert "--app-name basic-auth" in mlflow
    assert services["prefect-server"]["environment"][
        "PREFECT_API_DATABASE_CONNECTION_URL"
    ].startswith("postgresql+asyncpg://")
    assert "prefect worker start" in services["prefect-worker"]["command"]
    for name in ("postgres", "minio", "mlflow", "prefect-server"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_compose_variable_is_in_the_env_example_and_no_secret_is_committed(compose):
    text = (INFRA / "compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    assert used, "compose reads no variable: the parse above would miss them"
    missing = used - set(_env_example())
    assert not missing, (
        f"compose.yaml reads variables that .env.example does not list: {sorted(missing)}"
    )
    assert "/infra/.env" in (INFRA.parent / ".gitignore").read_text().split(), (
        "infra/.env is not git-ignored"
    )
    for key, value in _env_example().items():
        if any(word in key for word in ("PASSWORD", "SECRET")):
            assert value.startswith("change-me"), f"{key} in .env.example looks like a real secret"


# ---------- Kubernetes ----------


def _k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _validate(resource: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_every_kubernetes_manifest_validates_against_its_schema():
    docs = _k8s_documents()
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in docs}
    for name in ("postgres", "minio", "mlflow", "prefect-server", "prefect-worker"):
        assert ("Deployment", name) in kinds, f"no Deployment {name}"
    for name in ("postgres", "minio", "mlflow", "prefect-server"):
        assert ("Service", name) in kinds, f"no Service {name}"
    assert ("ConfigMap", "regionops-config") in kinds
    import kubernetes_validate

    for filename, doc in docs:
        try:
            _validate(doc)
        except kubernetes_validate.ValidationError as exc:  # its message names the field
            pytest.fail(f"{filename}: {doc['kind']}/{doc['metadata']['name']}: {exc}")


def test_the_validator_rejects_a_broken_manifest():
    import kubernetes_validate

    deployment = next(doc for _, doc in _k8s_documents() if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken)
    unknown = json.loads(json.dumps(deployment))
    unknown["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(unknown)


def test_services_select_the_pods_of_their_deployment():
    docs = [doc for _, doc in _k8s_documents()]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for service in (d for d in docs if d["kind"] == "Service"):
        target = deployments[service["metadata"]["name"]]
        labels = target["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        ports = {
            p["name"]
            for c in target["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (
                f"service {service['metadata']['name']}: no port {port['targetPort']}"
            )


def test_the_config_map_is_a_valid_production_profile():
    config = next(
        d
        for _, d in _k8s_documents()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "regionops-config"
    )["data"]
    assert set(config) & set(ENV_VARS), "the ConfigMap sets none of the settings variables"
    env = {key: value for key, value in config.items() if key in ENV_VARS}
    with pytest.MonkeyPatch.context() as patch:
        for key in ENV_VARS:
            patch.delenv(key, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        settings = get_settings()
    assert settings.profile == "production" and settings.dvc_remote.startswith("s3://")


def test_ddp_training_job_trains_on_gpus_through_params_only():
    job = next(
        d for _, d in _k8s_documents() if d["kind"] == "Job" and "train" in d["metadata"]["name"]
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = " ".join(container["args"])
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus >= 2
    assert f"--set train.devices={gpus}" in script and "--set train.strategy=ddp" in script
    assert "--set train.accelerator=gpu" in script
    # the overrides must be valid params, as the CLI will read them
    from components.config import load_params

    overrides = re.findall(r"--set (\S+)", script)
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml", overrides)
    assert params.train.strategy == "ddp" and params.train.devices == gpus


def _render(template: dict, values: dict) -> object:
    """Fill "{{ var }}" placeholders the way Prefect's worker does: a whole-string placeholder
    takes the value's own type; unset values drop the key."""
    if isinstance(template, dict):
        rendered = {k: _render(v, values) for k, v in template.items()}
        return {k: v for k, v in rendered.items() if v is not None}
    if isinstance(template, list):
        return [_render(v, values) for v in template]
    if isinstance(template, str):
        whole = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", template)
        if whole:
            return values.get(whole.group(1))
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(values[m.group(1)]), template)
    return template


def test_prefect_work_pool_template_renders_to_a_valid_kubernetes_job():
    import jsonschema

    template = json.loads((K8S / "prefect-work-pool.json").read_text())
    variables = template["variables"]
    jsonschema.Draft202012Validator.check_schema(variables)
    defaults = {k: v["default"] for k, v in variables["properties"].items() if "default" in v}
    jsonschema.validate(defaults, variables)
    placeholders = set(
        re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(template["job_configuration"]))
    )
    assert placeholders <= set(variables["properties"]), placeholders - set(variables["properties"])

    values = {**defaults, "env": {"PREFECT__FLOW_RUN_ID": "00000000-0000-0000-0000-000000000000"}}
    manifest = _render(template["job_configuration"]["job_manifest"], values)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    # Prefect's worker turns the env mapping into a list and the command string into args.
    container["env"] = [{"name": k, "value": v} for k, v in container["env"].items()]
    container["args"] = shlex.split(container["args"])
    _validate(manifest)
    assert manifest["metadata"]["namespace"] == "regionops"


# ---------- settings layer ----------


def _inside_env_helper(node: ast.AST, source: str) -> bool:
    helper = next(
        f
        for f in ast.walk(ast.parse(source))
        if isinstance(f, ast.FunctionDef) and f.name == "_env"
    )
    return helper.lineno <= node.lineno <= helper.end_lineno


def test_env_example_lists_every_variable_the_settings_layer_reads():
    source = Path(settings_module.__file__).read_text()
    read = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "_env"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert read and read <= set(ENV_VARS), f"read but not in ENV_VARS: {read - set(ENV_VARS)}"
    # Every other read would escape ENV_VARS: os.environ[...] loads, os.environ.get, os.getenv.
    direct = [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        )
        or (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("os.environ.get", "os.getenv")
            and not _inside_env_helper(node, source)
        )
    ]
    assert not direct, f"settings.py reads the environment outside _env(): {direct}"
    missing = set(ENV_VARS) - set(_env_example())
    assert not missing, f"infra/.env.example does not list: {sorted(missing)}"


PRODUCTION = {
    "REGIONOPS_PROFILE": "production",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    "PREFECT_API_URL": "http://127.0.0.1:4200/api",
    "REGIONOPS_DVC_REMOTE": "s3://regionops-dvc/store",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "REGIONOPS_REGISTRY_LOCK_URL": "postgresql://regionops_lock@127.0.0.1:5432/regionops_locks",
}


@pytest.fixture
def clean_env(monkeypatch):
    for key in ENV_VARS:
        if key != "REGIONOPS_HOME":
            monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_production_profile_comes_from_environment_variables_alone(clean_env):
    for key, value in PRODUCTION.items():
        clean_env.setenv(key, value)
    settings = get_settings()
    assert settings.profile == "production"
    assert settings.tracking_uri == "http://127.0.0.1:5000" and not settings.uses_embedded_mlflow
    assert settings.artifact_location is None  # the tracking server's S3, not a local folder
    assert settings.prefect_api_url == "http://127.0.0.1:4200/api"
    assert settings.dvc_remote == "s3://regionops-dvc/store"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"


def test_embedded_profile_is_the_default(clean_env):
    settings = get_settings()
    assert settings.profile == "embedded" and settings.uses_embedded_mlflow
    assert settings.artifact_location == settings.artifact_root.as_uri()
    assert settings.prefect_api_url is None and not settings.dvc_remote.startswith("s3://")


@pytest.mark.parametrize(
    "missing",
    [
        "MLFLOW_TRACKING_URI",
        "PREFECT_API_URL",
        "REGIONOPS_DVC_REMOTE",
        "REGIONOPS_REGISTRY_LOCK_URL",
    ],
)
def test_production_profile_names_the_missing_service(clean_env, missing):
    for key, value in PRODUCTION.items():
        if key != missing:
            clean_env.setenv(key, value)
    with pytest.raises(SettingsError, match=missing):
        get_settings()


def test_unknown_profile_is_refused(clean_env):
    clean_env.setenv("REGIONOPS_PROFILE", "staging")
    with pytest.raises(SettingsError, match="staging"):
        get_settings()


# ---------- one work pool, deployments that carry no machine's path ----------

REPO = INFRA.parent


def _params():
    from components.config import load_params

    return load_params(REPO / "params.yaml")


def test_every_place_naming_the_work_pool_agrees_with_params():
    """A worker polling another pool than the deployments' would leave every flow run Scheduled."""
    pool = _params().orchestrate.work_pool
    named = {}
    files = [
        INFRA / "compose.yaml",
        *sorted(K8S.glob("*.yaml")),
        REPO / "README.md",
        REPO / "docs" / "platform.md",
        INFRA / "README.md",
        REPO / "Makefile",
    ]
    pattern = re.compile(r"(?:--pool|--work-pool|work-pool create)\s+([A-Za-z0-9_.-]+)")
    for path in files:
        for found in pattern.findall(path.read_text()):
            if not found.isupper():  # "--work-pool NAME": a usage placeholder
                named.setdefault(found, []).append(path.name)
    prefect_yaml = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for deployment in prefect_yaml["deployments"]:
        named.setdefault(deployment["work_pool"]["name"], []).append(
            f"prefect.yaml:{deployment['name']}"
        )
    assert "compose.yaml" in named.get(pool, []) and "50-prefect-worker.yaml" in named.get(pool, [])
    assert set(named) == {pool}, f"orchestrate.work_pool is {pool!r}, but: {named}"


def test_prefect_yaml_deploys_the_three_flows_without_a_path_of_the_deploying_machine():
    from prefect.utilities.templating import apply_values

    params = _params().orchestrate
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"pipeline", "retrain", "landing-watch"}
    for name, deployment in deployments.items():
        module, _, function = deployment["entrypoint"].partition(":")
        assert not module.endswith(".py") and hasattr(
            __import__(module, fromlist=[function]), function
        ), name
        assert deployment["parameters"]["project_dir"] == "."
    assert [s["cron"] for s in deployments["retrain"]["schedules"]] == [params.retrain_cron]
    assert [s["interval"] for s in deployments["landing-watch"]["schedules"]] == [
        params.watch_interval_seconds
    ]
    # the pull step takes no argument: what `prefect deploy` stores is the same on every machine,
    # whatever the deploying shell's environment (it fills {{ $VAR }} placeholders from it)
    assert spec["pull"] == [{"flows.deploy_steps.enter_project_dir": {}}]
    text = (REPO / "prefect.yaml").read_text()
    assert "{{" not in text and "/home/" not in text and "/work/" not in text
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REGIONOPS_PROJECT_DIR", "/somewhere/on/the/deploying/machine")
        assert apply_values(spec["pull"], {}, remove_notset=False) == spec["pull"]


def test_pull_step_enters_the_workers_project_folder_at_run_time(tmp_path, monkeypatch):
    from prefect.deployments.steps.core import _get_function_for_step

    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        (project / name).write_text((REPO / name).read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGIONOPS_PROJECT_DIR", str(project))
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [(name, inputs)] = spec["pull"][0].items()
    step = _get_function_for_step(name)  # found by its name as a worker's flow run finds it
    assert (
        step(**inputs) == {"directory": str(project.resolve())} and Path.cwd() == project.resolve()
    )
    monkeypatch.setenv("REGIONOPS_PROJECT_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    from flows.deploy_steps import enter_project_dir

    with pytest.raises(RuntimeError, match="not a regionops project: no dvc.yaml, params.yaml"):
        enter_project_dir()
    monkeypatch.delenv("REGIONOPS_PROJECT_DIR")
    with pytest.raises(RuntimeError, match="REGIONOPS_PROJECT_DIR is not set"):
        enter_project_dir()


# ---------- the GPU training Job pulls what the train stage needs ----------


def test_training_job_pulls_exactly_the_train_stage_data_deps_by_dvc_lock():
    from components.versioning import stage_data_deps

    job = next(
        d for _, d in _k8s_documents() if d["kind"] == "Job" and "train" in d["metadata"]["name"]
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = " ".join(container["args"])
    # derived from dvc.yaml at run time, in the image's project folder, which holds dvc.lock
    assert container["workingDir"] == "/app" and "test -f dvc.lock" in script
    assert (
        "deps=$(python -m components.versioning data-deps train)" in script
        and "dvc pull $deps" in script
    )
    assert (
        len(re.findall(r"dvc pull", script)) == 1 and 'test -n "$deps"' in script
    )  # never a bare `dvc pull`
    # what that command prints here: every DVC-tracked dependency of train in dvc.yaml, nothing else
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    corpus = _params().data.corpus_dir
    declared = [d.replace("${data.corpus_dir}", corpus) for d in spec["stages"]["train"]["deps"]]
    outs = [
        o if isinstance(o, str) else next(iter(o))
        for s in spec["stages"].values()
        for o in s.get("outs", []) + s.get("metrics", []) + s.get("plots", [])
    ]
    tracked = [d for d in declared if any(d == o or d.startswith(f"{o}/") for o in outs)]
    assert stage_data_deps(REPO, "train") == tracked == [corpus, "data/validation/accepted.json"]
    dockerfile = (INFRA / "Dockerfile").read_text()
    copied = re.search(r"^COPY (.*) \./$", dockerfile, re.MULTILINE).group(1).split()
    assert {"dvc.yaml", "dvc.lock", "params.yaml"} <= set(copied)
    assert re.search(r"^WORKDIR /app$", dockerfile, re.MULTILINE)


def test_stage_data_deps_follows_params_and_dvc_files(tmp_path):
    """An imported dataset (data.corpus_dir, `dvc add`-ed) is pulled in place of the synthetic corpus."""
    from components.versioning import stage_data_deps

    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["corpus_dir"] = "data/imports/invoices"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "data" / "imports").mkdir(parents=True)
    (project / "data" / "imports" / "invoices.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: invoices\n"
    )
    import subprocess
    import sys

    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run(
        [dvc, "init", "--no-scm", "-q"],
        cwd=project,
        check=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert stage_data_deps(project, "train") == [
        "data/imports/invoices",
        "data/validation/accepted.json",
    ]
    with pytest.raises(KeyError, match="no stage 'trian'"):
        stage_data_deps(project, "trian")
