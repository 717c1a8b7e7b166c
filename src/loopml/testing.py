"""A conformance kit for pipeline steps, as scikit-learn's ``check_estimator`` is for estimators.

A third-party package that ships a step (entry point group ``loopml.steps``)
calls :func:`check_step` in its own tests::

    from loopml.testing import check_step
    from my_package.steps import my_step

    def test_my_step_keeps_the_contract():
        check_step(my_step, params={"path": "data.csv"})

Each check raises :class:`StepContractError` naming the check and what to
change. The checks are the step contract of :mod:`loopml.steps.base`:

``name``
    a lower-case identifier a spec can write, and a docstring summary for
    ``loopml steps list``;
``params``
    a pydantic model that refuses unknown keys (a typo in a spec must be an
    error, not a silently ignored key) and documents every field
    (``Field(description=...)``, which ``loopml steps list`` and the spec
    errors show);
``outputs``
    the step declares what it may write;
``runs``
    the step runs on a small context (by default a 60-row frame with numeric,
    categorical and target columns; pass ``context_factory`` for a step that
    needs more, e.g. a trained model);
``writes``
    it writes only what it declared (the engine refuses undeclared writes at
    run time too; this catches them in the plugin's own tests).

The step runs inside an MLflow run on the context's tracking store, as under
the engine, so steps that log to MLflow work unchanged. This module is for
tests and plugins: no part of loopml imports it (an import-linter contract).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from loopml.core.context import StepContext
from loopml.core.settings import Settings
from loopml.core.spec import ExperimentConfig
from loopml.engine import outputs
from loopml.steps.base import StepDefinition

if TYPE_CHECKING:
    import pandas as pd

ContextFactory = Callable[[Settings], StepContext]
"""Makes the context a step runs on, given settings on a scratch home."""

CHECKS: tuple[str, ...] = ("name", "params", "outputs", "runs", "writes")
"""Every check :func:`check_step` makes, in order."""

TARGET = "target"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PROBE_KEY = "loopml_conformance_unknown_key"


class StepContractError(AssertionError):
    """A step breaks the step contract; ``check`` names which rule (one of :data:`CHECKS`)."""

    def __init__(self, step: str, check: str, message: str) -> None:
        super().__init__(f"step {step!r} fails the {check!r} check: {message}")
        self.step = step
        self.check = check


def check_step(
    step: StepDefinition[Any],
    *,
    params: Mapping[str, Any] | None = None,
    context_factory: ContextFactory | None = None,
    settings: Settings | None = None,
    skip: tuple[str, ...] = (),
) -> StepContext | None:
    """Run every check of the step contract on ``step``; the context it left (if it ran).

    ``params`` are the raw spec parameters to run it with (default: none, so
    every field needs a default). ``settings`` default to a scratch home that
    is removed afterwards; ``context_factory`` makes the context (default
    :func:`small_context`). ``skip`` leaves out named checks, e.g. ``("runs",
    "writes")`` for a step that needs the network.
    """
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; the checks are {', '.join(CHECKS)}")
    if "name" not in skip:
        check_name(step)
    if "params" not in skip:
        check_params(step)
    if "outputs" not in skip:
        check_outputs_declared(step)
    if "runs" in skip:
        return None
    with _scratch_settings(settings) as ready:
        context = (context_factory or small_context)(ready)
        return run_step(step, context, params or {}, check_writes="writes" not in skip)


def check_name(step: StepDefinition[Any]) -> None:
    """A name a spec can write, and a summary for ``loopml steps list``."""
    if not _NAME.match(step.name):
        raise StepContractError(
            step.name,
            "name",
            "a step name is a lower-case identifier (letters, digits, underscores), like "
            "'load_data_from_file'",
        )
    if not step.summary.strip():
        raise StepContractError(
            step.name, "name", "the step function has no docstring; its first line is the summary"
        )


def check_params(step: StepDefinition[Any]) -> None:
    """Parameters are a pydantic model that refuses unknown keys and documents every field."""
    model = step.params
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise StepContractError(step.name, "params", "params must be a pydantic model class")
    for where, nested in _models(model, ""):
        if not _refuses_unknown_keys(nested):
            raise StepContractError(
                step.name,
                "params",
                f"an unknown key ({_PROBE_KEY!r}) is accepted{where}; subclass "
                "loopml.steps.StepParams or set model_config = ConfigDict(extra='forbid')",
            )
    bare = [name for name, field in model.model_fields.items() if not field.description]
    if bare:
        raise StepContractError(
            step.name,
            "params",
            f"fields without a description: {', '.join(bare)}; give each "
            "Field(description=...) saying what it does and what its default means",
        )


def _models(model: type[BaseModel], where: str) -> Iterator[tuple[str, type[BaseModel]]]:
    """``model`` and every model nested in its fields, with where each sits."""
    yield where, model
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _models(annotation, f"{where or ' in'} {name}".replace("  ", " "))


def _refuses_unknown_keys(model: type[BaseModel]) -> bool:
    try:
        model.model_validate({_PROBE_KEY: 1})
    except ValidationError as exc:
        return any(
            error["type"] == "extra_forbidden" and error["loc"][:1] == (_PROBE_KEY,)
            for error in exc.errors()
        )
    return False


def check_outputs_declared(step: StepDefinition[Any]) -> None:
    """The step says what it may write."""
    if step.outputs is None:
        raise StepContractError(
            step.name,
            "outputs",
            "the step declares no outputs; pass outputs=(...) to @step, e.g. "
            "('data/{frame}', 'values/my_fact')",
        )


def run_step(
    step: StepDefinition[Any],
    context: StepContext,
    raw_params: Mapping[str, Any],
    *,
    check_writes: bool = True,
) -> StepContext:
    """Run ``step`` on ``context`` in an MLflow run, then compare what it wrote with its outputs."""
    from loopml.registry.tracking import ensure_experiment, use_tracking

    try:
        params = step.parse(dict(raw_params), context.experiment)
    except ValidationError as exc:
        raise StepContractError(
            step.name, "runs", f"the parameters {dict(raw_params)!r} do not validate: {exc}"
        ) from exc
    mlflow = use_tracking(context.settings)
    experiment_id = ensure_experiment(context.settings, context.experiment.experiment_name)
    before = outputs.snapshot(context)
    with mlflow.start_run(
        experiment_id=experiment_id, nested=mlflow.active_run() is not None
    ) as run:
        context.mlflow_run_id = run.info.run_id
        try:
            step(context, params)
        except Exception as exc:
            raise StepContractError(
                step.name, "runs", f"it raised {type(exc).__name__}: {exc}"
            ) from exc
    if check_writes:
        written = outputs.changed(context, before)
        extra = step.undeclared(params, written)
        if extra:
            declared = step.declared_outputs(params) or ()
            raise StepContractError(
                step.name,
                "writes",
                f"it wrote {', '.join(extra)}, which it does not declare (declared: "
                f"{', '.join(declared) or 'nothing'})",
            )
    return context


def small_frame(
    problem_type: Literal["classification", "regression"] = "classification",
    rows: int = 60,
    seed: int = 0,
) -> pd.DataFrame:
    """A small frame: two numeric features, one categorical, and a learnable ``target``."""
    import numpy as np
    import pandas as pd

    random = np.random.default_rng(seed)
    x1 = random.normal(size=rows)
    x2 = random.uniform(0, 10, size=rows)
    colour = random.choice(["red", "green", "blue"], size=rows)
    signal = x1 + 0.2 * x2 + (colour == "red")
    target: Any = (
        (signal > np.median(signal)).astype(int) if problem_type == "classification" else signal
    )
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, TARGET: target})


def small_context(
    settings: Settings,
    problem_type: Literal["classification", "regression"] = "classification",
    rows: int = 60,
) -> StepContext:
    """A context holding :func:`small_frame` as ``data["train"]``, for steps that read it."""
    metric = "F1" if problem_type == "classification" else "R2"
    experiment = ExperimentConfig.model_validate(
        {
            "experiment_name": "loopml-step-conformance",
            "model_name": "loopml_step_conformance",
            "main_metric": metric,
            "problem_type": problem_type,
            "target": TARGET,
        }
    )
    context = StepContext(
        run_id="conformance",
        experiment=experiment,
        settings=settings,
        base_dir=settings.home,
        spec_hash="0" * 64,
    )
    context.data["train"] = small_frame(problem_type, rows)
    return context


@contextmanager
def _scratch_settings(settings: Settings | None) -> Iterator[Settings]:
    if settings is not None:
        yield settings
        return
    with tempfile.TemporaryDirectory(prefix="loopml-conformance-") as folder:
        home = Path(folder) / "home"
        scratch = Settings(
            home=home,
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            database_url=f"sqlite:///{home / 'loopml.db'}",
            artifact_root=(home / "artifacts").as_uri(),
        )
        scratch.ensure_home()
        yield scratch
