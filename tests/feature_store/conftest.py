"""A real Feast repo (the example's definitions over freshly generated Parquet files).

These tests run in the Feast environment only (``.venv-feast``, scripts/install-feast.sh):
every module is marked ``feast``; the main run deselects the marker (pyproject addopts)
and scripts/test.sh runs ``pytest -m feast tests/feature_store`` in the Feast venv.
Nothing here imports Feast at module level, so collecting in the main venv works; and
in a run that selects them, a missing Feast fails every test (never a skip).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loopml.core.settings import Settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "feature_store"
MODEL = "fraud_fs_tests"


@pytest.fixture(autouse=True)
def _feast_is_installed() -> None:
    """A feature-store test in an environment without Feast fails, it does not skip."""
    try:
        import feast  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"Feast is not installed here ({exc}): run bash scripts/install-feast.sh")


@dataclass(frozen=True)
class Repo:
    root: Path  # holds transactions.parquet and repo/
    repo: Path
    transactions: Path
    stats: Path
    end: datetime


def make_repo(folder: Path) -> Repo:
    import sys

    sys.path.insert(0, str(EXAMPLE))
    try:
        from make_data import make
    finally:
        sys.path.remove(str(EXAMPLE))
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stats, transactions = make(folder, customers=60, days=10, transactions=600, seed=4, end=end)
    for name in ("feature_store.yaml", "definitions.py"):
        shutil.copy(EXAMPLE / "repo" / name, folder / "repo" / name)
    from loopml.features import apply_repo

    apply_repo(folder / "repo")
    return Repo(folder, folder / "repo", transactions, stats, end)


@pytest.fixture(scope="session")
def feast_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return make_repo(tmp_path_factory.mktemp("feast"))


def fs_settings(home: Path, tracking_uri: str, database_url: str, **extra: Any) -> Settings:
    return Settings(
        home=home,
        tracking_uri=tracking_uri,
        database_url=database_url,
        artifact_root=(home / "artifacts").as_uri(),
        serve_watch_interval_s=0.5,
        serve_log_flush_s=0.05,
        trusted_registrars=["*"],
        **extra,
    )


def spec(repo: Repo, name: str, **load: Any) -> str:
    params = {
        "repo": str(repo.repo),
        "entities": {"path": str(repo.transactions)},
        "feature_service": "fraud_features",
        **load,
    }
    return json.dumps(
        {
            "pipeline": [
                {
                    "MLSteps": [
                        {"load_data_from_feature_store": params},
                        {"validate_data": {"reference": "none"}},
                        {
                            "train_model": {
                                "modeling_params": {
                                    "estimator_list": ["lr"],
                                    "fold": 2,
                                    "session_id": 1,
                                },
                                "finalize": False,
                            }
                        },
                        {"register_model": {}},
                    ]
                }
            ],
            "experiment_config": {
                "experiment_name": f"{name}-exp",
                "model_name": name,
                "main_metric": "AUC",
                "problem_type": "classification",
                "target": "is_fraud",
            },
        }
    )


@dataclass(frozen=True)
class Trained:
    repo: Repo
    name: str
    settings: Settings


@pytest.fixture(scope="session")
def trained(
    feast_repo: Repo, tracking_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    """The example spec's pipeline on the test repo: version 1 of MODEL, champion."""
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline

    folder = tmp_path_factory.mktemp("fs-model")
    settings = fs_settings(folder / "home", tracking_uri, f"sqlite:///{folder / 'm.db'}")
    run_pipeline(parse_spec(spec(feast_repo, MODEL, allow_override=["tx_count_7d"])), settings)
    return Trained(feast_repo, MODEL, settings)


def materialize_all(repo: Repo) -> None:
    from loopml.features import open_store

    open_store(repo.repo).materialize(repo.end - timedelta(days=20), datetime.now(UTC))
