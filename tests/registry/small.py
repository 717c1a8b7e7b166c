"""Small registered models for the trust tests: logged in a second, registered either way,
and their stored artifact folder found on disk so a test can alter it."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.settings import Settings

COLUMNS = ["a", "b", "c"]


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    return pd.DataFrame(generator.normal(size=(rows, len(COLUMNS))), columns=COLUMNS)


def log_model(settings: Settings, seed: int = 0) -> str:
    """A fitted logistic regression (with a signature) logged to MLflow; its model URI."""
    from sklearn.linear_model import LogisticRegression

    from loopml.registry.tracking import ensure_experiment, use_tracking

    mlflow = use_tracking(settings)
    data = frame(200, seed)
    target = (data["a"] + data["b"] > 0).astype(int)
    model = LogisticRegression().fit(data, target)
    experiment = ensure_experiment(settings, "trust-tests")
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=data.head(3),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],  # no slow inference of requirements
        )
    return str(info.model_uri)


def register_with_loopml(settings: Settings, name: str | None = None, seed: int = 0) -> str:
    """A new version registered through loopml (hash recorded); its version number."""
    from loopml.lifecycle import register

    registered, _ = register(settings, log_model(settings, seed), name or new_name(), {})
    return registered.version


def register_with_mlflow(settings: Settings, name: str, seed: int = 0) -> str:
    """A new version registered straight with MLflow, as someone outside loopml would."""
    from loopml.registry.tracking import use_tracking

    mlflow = use_tracking(settings)
    return str(mlflow.register_model(log_model(settings, seed), name).version)


def new_name() -> str:
    return f"trust_{uuid.uuid4().hex[:8]}"


def stored_folder(settings: Settings, name: str, version: str) -> Path:
    """Where the artifact store keeps the version's files (a local ``file://`` store here)."""
    from loopml.registry.tracking import use_tracking

    client = use_tracking(settings).MlflowClient()
    uri = client.get_model_version_download_uri(name, version)
    assert uri.startswith("file://"), uri
    folder = Path(uri.removeprefix("file://"))
    assert (folder / "MLmodel").is_file(), list(folder.iterdir())
    return folder


class _Touch:
    """Unpickling this creates ``marker``: proof that a file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def plant_pickle(folder: Path, marker: Path) -> None:
    """Replace the model file with one whose unpickling runs code (touches ``marker``)."""
    (folder / "model.pkl").write_bytes(pickle.dumps(_Touch(marker)))


def set_mlflow_registrar(settings: Settings, name: str, version: str, user: str) -> None:
    """What an authenticated tracking server records as the version's registrar.

    MLflow's SQL store leaves ``user_id`` empty (only its auth-enabled server sets
    it), so the test writes it where that server would.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(settings.tracking)
    try:
        with engine.begin() as connection:
            changed = connection.execute(
                sa.text("UPDATE model_versions SET user_id = :u WHERE name = :n AND version = :v"),
                {"u": user, "n": name, "v": int(version)},
            ).rowcount
        assert changed == 1
    finally:
        engine.dispose()
