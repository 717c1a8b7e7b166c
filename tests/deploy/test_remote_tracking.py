"""Where artifacts go: the tracking server decides, unless LOOPML_ARTIFACT_ROOT says.

With a local tracking store loopml keeps its default root under ``$LOOPML_HOME``. With a
tracking server it leaves the choice to the server (the topology test runs that against
a real ``mlflow server`` proxying to S3). An explicit ``s3://`` root is the direct-access
mode: every process then reads S3 credentials from its environment, never from a spec;
that mode runs here against a real S3 server (SeaweedFS).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from loopml.core.settings import Settings
from loopml.registry.tracking import _warn_if_local
from tests.deploy.services import (
    BUCKET,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    s3_keys,
    seaweed_s3,
    wait_s3,
)


@pytest.mark.parametrize("uri", ["http://mlflow:5000", "https://mlflow.example.com/", "HTTP://x"])
def test_a_tracking_server_chooses_the_artifact_root(tmp_path: Path, uri: str) -> None:
    settings = Settings(home=tmp_path, tracking_uri=uri)
    assert settings.tracking_is_remote
    assert settings.artifacts is None
    settings.ensure_home()
    assert not (tmp_path / "artifacts").exists(), "no local artifact root for a server"


@pytest.mark.parametrize(
    "uri", [None, "sqlite:///x.db", "postgresql+psycopg://db/mlflow", "file:///srv/mlruns"]
)
def test_a_local_or_database_store_keeps_the_local_root(tmp_path: Path, uri: str | None) -> None:
    settings = Settings(home=tmp_path, tracking_uri=uri)
    assert not settings.tracking_is_remote
    assert settings.artifacts == (tmp_path / "artifacts").as_uri()


def test_an_explicit_root_wins_over_the_server(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, tracking_uri="http://mlflow:5000", artifact_root="s3://bucket/loopml"
    )
    assert settings.artifacts == "s3://bucket/loopml"


@pytest.mark.parametrize(
    ("location", "warned"),
    [
        ("/home/someone/.loopml/artifacts/exp", True),
        ("file:///home/someone/.loopml/artifacts/exp", True),
        ("mlflow-artifacts:/1", False),
        ("s3://bucket/mlflow/1", False),
    ],
)
def test_a_server_experiment_on_a_local_path_is_reported(
    location: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(tracking_uri="http://mlflow:5000")
    experiment = SimpleNamespace(name="fraud", artifact_location=location)
    with caplog.at_level(logging.WARNING, logger="loopml.registry.tracking"):
        _warn_if_local(settings, experiment)
    assert bool(caplog.records) == warned
    if warned:
        assert location in caplog.text and "LOOPML_ARTIFACT_ROOT" in caplog.text


@pytest.mark.slow
def test_direct_s3_artifacts_with_credentials_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LOOPML_ARTIFACT_ROOT=s3://…: the experiment lives in the bucket, models load back.

    A model logged by one process is loaded by another that shares nothing with it but
    the tracking store and the bucket; without S3 credentials in its environment the
    second process cannot load it.
    """
    s3, endpoint = seaweed_s3(tmp_path / "s3")
    s3.start()
    try:
        wait_s3(endpoint, s3)
        for key, value in {
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(key, value)
        from sklearn.linear_model import LogisticRegression

        from loopml.registry.tracking import ensure_experiment, use_tracking

        tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
        settings = Settings(
            home=tmp_path / "home", tracking_uri=tracking, artifact_root=f"s3://{BUCKET}/direct"
        )
        experiment_id = ensure_experiment(settings, "direct s3/experiment")
        mlflow = use_tracking(settings)
        experiment = mlflow.MlflowClient().get_experiment(experiment_id)
        assert experiment.artifact_location == f"s3://{BUCKET}/direct/direct_s3_experiment"
        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        with mlflow.start_run(experiment_id=experiment_id):
            logged = mlflow.sklearn.log_model(model, name="model")
        keys = s3_keys(endpoint, "direct/direct_s3_experiment/")
        assert any(k.endswith("/MLmodel") for k in keys), keys[:20]
        assert not (tmp_path / "home" / "artifacts").exists()

        load = (
            "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
            "print(list(mlflow.pyfunc.load_model(sys.argv[2]).predict([[0.0], [3.0]])))"
        )
        command = [sys.executable, "-c", load, tracking, logged.model_uri]
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
        env = {
            **base,
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": str(tmp_path),  # no ~/.aws of whoever runs the tests
        }
        creds = {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}
        loaded = subprocess.run(
            command, env={**env, **creds}, capture_output=True, text=True, timeout=180
        )
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert loaded.stdout.strip().endswith("[np.int64(0), np.int64(1)]"), loaded.stdout
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert refused.returncode != 0
        assert "credentials" in refused.stderr.lower(), refused.stderr[-2000:]
    finally:
        s3.stop()


def test_s3_server_identity_file_is_what_the_test_wrote(tmp_path: Path) -> None:
    """The helper binds loopback and writes one identity; a typo here would open the bucket."""
    service, endpoint = seaweed_s3(tmp_path / "s3")
    config = json.loads((tmp_path / "s3" / "s3.json").read_text())
    assert config["identities"][0]["credentials"] == [
        {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}
    ]
    assert "-ip.bind=127.0.0.1" in service.command and endpoint.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    "options",
    [
        {"key": "AKIA0000", "secret": "s3cr3t"},
        {"client_kwargs": {"aws_secret_access_key": "x", "endpoint_url": "http://s3:8333"}},
        {"token": "t"},
        {"account_key": "azure"},
        {"Password": "p"},
    ],
)
def test_a_spec_cannot_carry_storage_credentials(options: dict[str, object]) -> None:
    from pydantic import ValidationError

    from loopml.steps.data import FileSource

    with pytest.raises(ValidationError) as caught:
        FileSource(path="s3://bucket/data.csv", storage_options=options)
    assert "credentials do not belong in a spec" in str(caught.value)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_a_spec_may_name_an_endpoint_and_other_non_secret_options() -> None:
    from loopml.steps.data import FileSource

    options = {"anon": False, "client_kwargs": {"endpoint_url": "http://s3:8333"}}
    source = FileSource(path="s3://bucket/data.csv", storage_options=options)
    assert source.storage_options == options
