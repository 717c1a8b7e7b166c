"""The step that puts the chosen model in the registry and marks it challenger (or champion).

Registration is shared with ``validate_model``: whichever of the two runs
first registers the model of ``train_model`` once, and the other reuses that
version. Once the gate has decided in a run, ``register_model`` leaves
``champion`` to it.
"""

from __future__ import annotations

from pydantic import Field

from loopml.core.context import StepContext
from loopml.core.errors import DataError
from loopml.steps.base import StepParams, step

GATE_VALUE = "gate"
"""Where ``validate_model`` leaves its decision in ``context.values``."""


class RegisterParams(StepParams):
    """Where the model goes and which alias it gets."""

    model_name: str | None = Field(
        default=None, description="Registered model name; default experiment_config.model_name."
    )
    alias: str = Field(default="challenger", description="Alias the new version gets.")
    champion_if_none: bool = Field(
        default=True,
        description=(
            "Also make it champion when the model has no champion yet (ignored once "
            "validate_model has decided in this run)."
        ),
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra version tags.")


@step("register_model", params=RegisterParams)
def register_model(context: StepContext, params: RegisterParams) -> None:
    """Register the best model of train_model and set its aliases."""
    from loopml.lifecycle import move_alias
    from loopml.registry.models import CHAMPION, get_version, version_for_alias

    name = params.model_name or context.experiment.model_name
    version = register_challenger(context, name, params.alias, params.tags)
    aliases = [params.alias]
    gate_decided = GATE_VALUE in context.values
    if (
        params.champion_if_none
        and not gate_decided
        and version_for_alias(context.settings, name, CHAMPION) is None
    ):
        move_alias(
            context.settings,
            name,
            CHAMPION,
            version,
            reason="register_model: first version of a model without a champion",
            run_id=context.run_id,
        )
        context.values["champion_set_by_register"] = version
        aliases.append(CHAMPION)
    aliases = sorted(set(aliases) | set(get_version(context.settings, name, version).aliases))
    context.values["registered_model"] = f"{name} version {version} (aliases: {', '.join(aliases)})"


def register_challenger(
    context: StepContext,
    name: str,
    alias: str = "challenger",
    extra_tags: dict[str, str] | None = None,
) -> str:
    """The version of ``name`` holding this run's trained model, registered on first call.

    Gives the version ``alias`` (audited). A second call in the same run, from
    the other of register_model and validate_model, reuses the version.
    """
    from loopml.lifecycle import move_alias, register

    model_uri = context.values.get("model_uri")
    if not model_uri:
        raise DataError("there is no trained model to register: put train_model before it")
    if (
        context.values.get("registered_name") == name
        and context.values.get("registered_model_uri") == model_uri
    ):
        version = str(context.values["registered_version"])
    else:
        tags = {
            "loopml.run_id": context.run_id,
            "loopml.spec_hash": context.spec_hash,
            "loopml.data_fingerprint": str(context.values.get("data_fingerprint", "")),
            "loopml.pipeline_mlflow_run_id": context.mlflow_run_id or "",
            "loopml.model_mlflow_run_id": str(context.values.get("model_mlflow_run_id", "")),
            "loopml.main_metric": context.experiment.main_metric,
            "loopml.main_metric_value": str(context.values.get("main_metric_value", "")),
            **(extra_tags or {}),
        }
        context.progress(f"registering {name}", 0, None)
        registered, _ = register(
            context.settings, str(model_uri), name, tags, run_id=context.run_id
        )
        version = registered.version
        context.values["registered_version"] = version
        context.values["registered_name"] = name
        context.values["registered_model_uri"] = model_uri
    move_alias(
        context.settings,
        name,
        alias,
        version,
        reason=f"registered by run {context.run_id}",
        run_id=context.run_id,
    )
    return version
