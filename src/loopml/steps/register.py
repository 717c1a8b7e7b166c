"""The step that puts the chosen model in the registry and marks it challenger (or champion)."""

from __future__ import annotations

from pydantic import Field

from loopml.core.context import StepContext
from loopml.core.errors import DataError
from loopml.steps.base import StepParams, step


class RegisterParams(StepParams):
    """Where the model goes and which alias it gets."""

    model_name: str | None = Field(
        default=None, description="Registered model name; default experiment_config.model_name."
    )
    alias: str = Field(default="challenger", description="Alias the new version gets.")
    champion_if_none: bool = Field(
        default=True, description="Also make it champion when the model has no champion yet."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra version tags.")


@step("register_model", params=RegisterParams)
def register_model(context: StepContext, params: RegisterParams) -> None:
    """Register the best model of train_model and set its aliases."""
    from loopml.registry.models import CHAMPION, register_version, set_alias, version_for_alias

    model_uri = context.values.get("model_uri")
    if not model_uri:
        raise DataError("register_model has no model to register: put train_model before it")
    name = params.model_name or context.experiment.model_name
    tags = {
        "loopml.run_id": context.run_id,
        "loopml.spec_hash": context.spec_hash,
        "loopml.data_fingerprint": str(context.values.get("data_fingerprint", "")),
        "loopml.pipeline_mlflow_run_id": context.mlflow_run_id or "",
        "loopml.model_mlflow_run_id": str(context.values.get("model_mlflow_run_id", "")),
        "loopml.main_metric": context.experiment.main_metric,
        "loopml.main_metric_value": str(context.values.get("main_metric_value", "")),
        **params.tags,
    }
    context.progress(f"registering {name}", 0, None)
    version = register_version(context.settings, str(model_uri), name, tags)
    aliases = [params.alias]
    set_alias(context.settings, name, params.alias, version.version)
    if params.champion_if_none and version_for_alias(context.settings, name, CHAMPION) is None:
        set_alias(context.settings, name, CHAMPION, version.version)
        aliases.append(CHAMPION)
    context.values["registered_model"] = (
        f"{name} version {version.version} (aliases: {', '.join(aliases)})"
    )
    context.values["registered_version"] = version.version
    context.values["registered_name"] = name
