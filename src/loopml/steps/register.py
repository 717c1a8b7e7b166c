"""The step that puts this run's trained model in the registry and names it challenger.

Roles are split so that no step undoes another: registration happens once
per run and model name (:func:`register_once`, shared with
``validate_model``, which needs a version to judge); ``register_model`` gives
the version its alias; promotion to ``champion`` is ``validate_model``'s
alone. Only in a pipeline without ``validate_model`` does ``register_model``
make the first version of a model champion (``champion_if_none``), so a
gate never has to take back what registration did.

A smoke run or a reproduction (``context.holds_aliases``) registers its
version like any run, tagged ``loopml.smoke=true`` or ``loopml.reproduces``,
and moves no alias: a fast-profile model never becomes champion, silently or
otherwise.
"""

from __future__ import annotations

from pydantic import Field

from loopml.core.context import RegisteredModel, StepContext
from loopml.core.errors import DataError
from loopml.steps.base import StepParams, step

GATE_STEP = "validate_model"
"""The step that owns promotion when it is in the pipeline."""


class RegisterParams(StepParams):
    """Where the model goes and which alias it gets."""

    model_name: str | None = Field(
        default=None, description="Registered model name; default experiment_config.model_name."
    )
    alias: str = Field(default="challenger", description="Alias the new version gets.")
    champion_if_none: bool = Field(
        default=True,
        description=(
            "Also make it champion when the model has no champion yet; ignored when the "
            "pipeline has validate_model, which decides promotion."
        ),
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra version tags.")


@step("register_model", params=RegisterParams, outputs=("registered",), inputs=("trained",))
def register_model(context: StepContext, params: RegisterParams) -> None:
    """Register the best model of train_model and set its alias."""
    from loopml.lifecycle import move_alias
    from loopml.registry.models import CHAMPION, set_version_tag, version_for_alias

    name = params.model_name or context.experiment.model_name
    reused = context.registered is not None and context.registered.name == name
    registered = register_once(context, name, params.tags)
    if reused:
        for key, value in params.tags.items():
            set_version_tag(context.settings, name, registered.version, key, value)
    if context.holds_aliases:  # a smoke run or a reproduction: registered, tagged, no alias
        return
    give_alias(context, registered, params.alias)
    if (
        params.champion_if_none
        and GATE_STEP not in context.pipeline
        and version_for_alias(context.settings, name, CHAMPION) is None
    ):
        move_alias(
            context.settings,
            name,
            CHAMPION,
            registered.version,
            reason="register_model: first version of a model without a champion",
            run_id=context.run_id,
        )


def register_once(
    context: StepContext, name: str, extra_tags: dict[str, str] | None = None
) -> RegisteredModel:
    """The version of ``name`` holding this run's trained model, registered on first call.

    A second call in the same run (``register_model`` and ``validate_model``
    both need the version) returns the same version instead of a new one.
    """
    from loopml.lifecycle import register

    trained = context.trained
    if trained is None:
        raise DataError("there is no trained model to register: put train_model before it")
    found = context.registered
    if found is not None and found.name == name and found.model_uri == trained.model_uri:
        return found
    tags = {
        "loopml.run_id": context.run_id,
        "loopml.spec_hash": context.spec_hash,
        "loopml.data_fingerprint": context.loaded.fingerprint if context.loaded else "",
        "loopml.pipeline_mlflow_run_id": context.mlflow_run_id or "",
        "loopml.model_mlflow_run_id": trained.mlflow_run_id,
        "loopml.main_metric": context.experiment.main_metric,
        "loopml.main_metric_value": str(trained.main_metric_value),
        **(extra_tags or {}),
        **held_tags(context),
    }
    binding = context.values.get("feature_store")  # load_data_from_feature_store's
    if isinstance(binding, str):
        from loopml.steps.feature_store import record_binding

        tags.update(record_binding(context, trained.mlflow_run_id, binding))
    context.progress(f"registering {name}", 0, None)
    # lifecycle.register hashes the artifacts and records the hash and registrar
    # (store trust table), so the version loads through the trusted loader.
    version = register(context.settings, trained.model_uri, name, tags, run_id=context.run_id)[
        0
    ].version
    context.registered = RegisteredModel(
        name=name, version=str(version), model_uri=trained.model_uri
    )
    return context.registered


def held_tags(context: StepContext) -> dict[str, str]:
    """Version tags saying why a version got no alias: a smoke run, or a reproduction."""
    tags: dict[str, str] = {}
    if context.smoke:
        tags["loopml.smoke"] = "true"
    if context.reproduces:
        tags["loopml.reproduces"] = context.reproduces
    return tags


def held_reason(context: StepContext) -> str:
    if context.smoke:
        return "smoke run (fast profile), so no alias moves"
    return f"reproduction of run {context.reproduces}, so no alias moves"


def give_alias(context: StepContext, registered: RegisteredModel, alias: str) -> None:
    """Point ``alias`` of the registered model at this run's version (audited, once)."""
    from loopml.lifecycle import move_alias
    from loopml.registry.models import version_for_alias

    if version_for_alias(context.settings, registered.name, alias) == registered.version:
        return
    move_alias(
        context.settings,
        registered.name,
        alias,
        registered.version,
        reason=f"registered by run {context.run_id}",
        run_id=context.run_id,
    )
