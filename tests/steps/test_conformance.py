"""The step conformance kit: every built-in step passes it, and each rule catches a bad step."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from loopml.core.context import StepContext
from loopml.core.settings import Settings
from loopml.steps import StepParams, step
from loopml.steps.registry import BUILTIN_STEPS, StepRegistry
from loopml.testing import CHECKS, StepContractError, check_step, run_step, small_context

TINY_PROJECT = Path(__file__).parents[1] / "fixtures" / "tiny_project"
QUICK_TRAIN = {"modeling_params": {"estimator_list": ["dt"], "fold": 2, "session_id": 1}}


def _trained(settings: Settings) -> StepContext:
    """A small context after train_model: what evaluate, gate and register need."""
    context = small_context(settings)
    return run_step(
        StepRegistry.with_builtins(plugins=False).get("train_model"), context, QUICK_TRAIN
    )


def _csv(tmp_path: Path) -> str:
    path = tmp_path / "small.csv"
    small_context(Settings(home=tmp_path / "unused")).data["train"].to_csv(path, index=False)
    return str(path)


def _sqlite(tmp_path: Path) -> str:
    path = tmp_path / "small.db"
    frame = small_context(Settings(home=tmp_path / "unused")).data["train"]
    with sqlite3.connect(path) as connection:
        frame.to_sql("small", connection, index=False)
    return f"sqlite:///{path}"


# How each built-in step is run by the kit: raw params, context factory, checks skipped.
CASES: dict[str, Any] = {
    "load_data_from_file": lambda tmp: ({"path": _csv(tmp)}, None, ()),
    "load_data_from_sql": lambda tmp: ({"url": _sqlite(tmp), "query": "small"}, None, ()),
    # needs Kaggle's servers: the contract checks that need no network still run
    "load_data_from_kaggle": lambda tmp: (
        {"kaggle_dataset_name": "a/b", "training_file_name": "c.csv"},
        None,
        ("runs", "writes"),
    ),
    # needs Feast (its own venv): it runs there, in tests/feature_store/test_training.py
    "load_data_from_feature_store": lambda tmp: (
        {"repo": "repo", "entities": {"path": "e.csv"}, "features": ["v:f"]},
        None,
        ("runs", "writes"),
    ),
    "validate_data": lambda tmp: ({}, None, ()),
    "train_model": lambda tmp: (QUICK_TRAIN, None, ()),
    "run_mlflow_project": lambda tmp: ({"uri": str(TINY_PROJECT), "session_id": 1}, None, ()),
    "evaluate_model": lambda tmp: ({}, _trained, ()),
    "validate_model": lambda tmp: ({}, _trained, ()),
    "register_model": lambda tmp: ({}, _trained, ()),
}


@pytest.fixture(scope="session")
def kit_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One metadata store for the session's MLflow store: registering records the version's
    trust there, and the gate loads the champion a previous case registered only if the
    record sits beside the registry it describes. One database kind is enough here."""
    return f"sqlite:///{tmp_path_factory.mktemp('kit') / 'loopml.db'}"


@pytest.fixture
def kit_settings(tmp_path: Path, tracking_uri: str, kit_database: str) -> Settings:
    """The session's MLflow store and its metadata store."""
    return Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=kit_database,
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )


def test_every_built_in_step_has_a_conformance_case() -> None:
    assert set(CASES) == set(BUILTIN_STEPS)


@pytest.mark.parametrize("name", sorted(BUILTIN_STEPS))
def test_built_in_steps_keep_the_step_contract(
    name: str, tmp_path: Path, kit_settings: Settings
) -> None:
    params, factory, skip = CASES[name](tmp_path)
    definition = StepRegistry.with_builtins(plugins=False).get(name)
    context = check_step(
        definition, params=params, context_factory=factory, settings=kit_settings, skip=skip
    )
    if "runs" not in skip:
        assert context is not None
        declared = definition.declared_outputs(definition.parse(params, context.experiment))
        assert declared  # it wrote something it declared
        assert any(name in context.entries() for name in declared if "*" not in name)


# --- deliberately bad steps: each breaks exactly one rule ---


class GoodParams(StepParams):
    """Parameters that keep the contract."""

    size: int = Field(default=1, description="How many.")


@step("Bad-Name", params=GoodParams, outputs=())
def _bad_name(context: StepContext, params: GoodParams) -> None:
    """A name no spec can write."""


@step("no_summary", params=GoodParams, outputs=())
def _no_summary(context: StepContext, params: GoodParams) -> None:
    pass


class LooseParams(BaseModel):
    size: int = Field(default=1, description="How many.")


class Inner(BaseModel):
    depth: int = Field(default=1, description="How deep.")


class LooseInsideParams(StepParams):
    """Strict on top, loose one level down."""

    inner: Inner = Field(default_factory=Inner, description="Nested settings.")


@step("loose_inside", params=LooseInsideParams, outputs=())
def _loose_inside(context: StepContext, params: LooseInsideParams) -> None:
    """Unknown keys slip through a nested model."""


@step("loose_params", params=LooseParams, outputs=())
def _loose(context: StepContext, params: LooseParams) -> None:
    """Unknown keys slip through."""


class UndocumentedParams(StepParams):
    size: int = 1


@step("undocumented", params=UndocumentedParams, outputs=())
def _undocumented(context: StepContext, params: UndocumentedParams) -> None:
    """A field nobody explained."""


@step("undeclared", params=GoodParams)
def _undeclared(context: StepContext, params: GoodParams) -> None:
    """Says nothing of what it writes."""


@step("crashes", params=GoodParams, outputs=())
def _crashes(context: StepContext, params: GoodParams) -> None:
    """Fails on a small frame."""
    raise ZeroDivisionError("no rows for me")


@step("smuggles", params=GoodParams, outputs=("values/size",))
def _smuggles(context: StepContext, params: GoodParams) -> None:
    """Writes more than it declares."""
    context.values["size"] = params.size
    context.data["secret"] = context.require_frame().head(1)
    context.trained = None  # unchanged: not a write


BAD = {
    "name": [_bad_name, _no_summary],
    "params": [_loose, _loose_inside, _undocumented],
    "outputs": [_undeclared],
    "runs": [_crashes],
    "writes": [_smuggles],
}


def test_there_is_a_bad_step_for_every_check() -> None:
    assert set(BAD) == set(CHECKS)


@pytest.mark.parametrize(
    ("check", "bad"), [(check, bad) for check, steps in BAD.items() for bad in steps]
)
def test_a_bad_step_fails_the_check_it_breaks(check: str, bad: Any, tmp_path: Path) -> None:
    with pytest.raises(StepContractError) as caught:
        check_step(bad)
    assert caught.value.check == check
    assert bad.name in str(caught.value)


def test_the_messages_say_what_to_change() -> None:
    messages = {}
    for steps in BAD.values():
        for bad in steps:
            with pytest.raises(StepContractError) as caught:
                check_step(bad)
            messages[bad.name] = str(caught.value)
    assert "lower-case identifier" in messages["Bad-Name"]
    assert "docstring" in messages["no_summary"]
    assert "extra='forbid'" in messages["loose_params"]
    assert "in inner" in messages["loose_inside"]
    assert "size" in messages["undocumented"] and "description" in messages["undocumented"]
    assert "outputs=(" in messages["undeclared"]
    assert "ZeroDivisionError: no rows for me" in messages["crashes"]
    assert "data/secret" in messages["smuggles"] and "values/size" in messages["smuggles"]


def test_skipping_a_check_needs_its_name() -> None:
    with pytest.raises(ValueError, match="unknown checks"):
        check_step(_crashes, skip=("run",))
    assert check_step(_crashes, skip=("runs",)) is None
