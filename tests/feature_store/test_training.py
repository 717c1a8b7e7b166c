"""Training from a Feast repo: point-in-time joins, the recorded binding, the profile."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from loopml.core.errors import DataError
from loopml.core.settings import Settings
from loopml.steps.registry import StepRegistry
from loopml.testing import check_step, run_step, small_context
from tests.feature_store.conftest import Repo, Trained, make_repo

pytestmark = pytest.mark.feast

STEP = "load_data_from_feature_store"


def _definition() -> object:
    return StepRegistry.with_builtins(plugins=False).get(STEP)


def test_a_value_written_after_the_event_never_reaches_its_training_row(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    stats = pd.read_parquet(repo.stats)
    customer = int(stats["customer_id"].iloc[0])
    event = repo.end - timedelta(days=2, hours=12)
    # the customer's history around the event: one value before it, one just after
    extra = stats[stats["customer_id"] == customer].head(2).copy()
    extra["event_timestamp"] = [event - timedelta(hours=1), event + timedelta(minutes=1)]
    extra["chargeback_rate"] = [0.777, 0.999]
    pd.concat([stats, extra], ignore_index=True).to_parquet(repo.stats, index=False)
    entities = pd.DataFrame(
        {
            "customer_id": [customer, customer],
            "event_timestamp": [event, event + timedelta(minutes=2)],
            "amount": [10.0, 20.0],
            "is_fraud": [0, 1],
        }
    )
    path = tmp_path / "entities.csv"
    entities.to_csv(path, index=False)  # timestamps as text: the step parses them
    context = run_step(
        _definition(),  # type: ignore[arg-type]
        small_context(Settings(home=tmp_path / "home")),
        {
            "repo": str(repo.repo / "feature_store.yaml"),
            "entities": {"path": str(path)},
            "features": ["customer_stats:chargeback_rate", "customer_stats:tx_count_7d"],
        },
    )
    frame = context.data["train"]
    # rows keep the entity table's order; keys and timestamps are not features
    assert list(frame.columns) == ["amount", "is_fraud", "chargeback_rate", "tx_count_7d"]
    assert frame["amount"].tolist() == [10.0, 20.0]
    assert frame["chargeback_rate"].tolist() == [0.777, 0.999]
    binding = json.loads(context.values["feature_store"])
    assert binding["entity_keys"] == ["customer_id"]
    assert binding["features"] == ["customer_stats:chargeback_rate", "customer_stats:tx_count_7d"]


def test_the_step_keeps_the_step_contract(feast_repo: Repo, tmp_path: Path) -> None:
    context = check_step(
        _definition(),  # type: ignore[arg-type]
        params={
            "repo": str(feast_repo.repo),
            "entities": {"path": str(feast_repo.transactions)},
            "feature_service": "fraud_features",
        },
        settings=Settings(home=tmp_path / "home"),
    )
    assert context is not None and len(context.data["train"]) == 600


def test_missing_entity_columns_and_unknown_features_are_named(
    feast_repo: Repo, tmp_path: Path
) -> None:
    path = tmp_path / "no_keys.csv"
    pd.DataFrame({"event_timestamp": ["2026-01-01"], "is_fraud": [0]}).to_csv(path, index=False)
    context = small_context(Settings(home=tmp_path / "home"))
    definition = StepRegistry.with_builtins(plugins=False).get(STEP)

    def run(features: list[str]) -> None:
        raw = {"repo": str(feast_repo.repo), "entities": {"path": str(path)}, "features": features}
        definition(context, definition.parse(raw, None))

    with pytest.raises(DataError, match="lacks customer_id"):
        run(["customer_stats:chargeback_rate"])
    with pytest.raises(DataError, match=r"has no feature 'nope'.*chargeback_rate"):
        run(["customer_stats:nope"])
    with pytest.raises(DataError, match=r"no feature view 'other'.*customer_stats"):
        run(["other:x"])


def test_the_trained_version_records_its_features_and_profiles_them(trained: Trained) -> None:
    from loopml.features import BINDING_ARTIFACT, FeatureBinding
    from loopml.registry.models import get_version, reference_profile
    from loopml.registry.tracking import use_tracking

    version = get_version(trained.settings, trained.name, "1")
    binding = FeatureBinding.from_tags(version.tags)
    assert binding is not None
    assert binding.feature_service == "fraud_features"
    assert binding.entity_keys == ("customer_id",)
    assert binding.allow_override == ("tx_count_7d",)
    assert set(binding.feature_columns) == {
        "avg_amount_30d",
        "tx_count_7d",
        "chargeback_rate",
        "account_age_days",
    }
    mlflow = use_tracking(trained.settings)
    text = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{BINDING_ARTIFACT}")
    assert FeatureBinding.from_json(text) == binding
    profile = reference_profile(trained.settings, trained.name, "1")
    assert profile is not None
    profiled = {column.name for column in profile.columns}
    assert set(binding.feature_columns) | {"amount"} <= profiled
    assert "customer_id" not in profiled
