"""The ``validate_data`` step: profile the training data and catch skew against a reference.

The profile of this run's data goes into the context (``reports
["reference_profile"]``), where ``train_model`` finds it and logs it next to
every model as ``reference_profile.json``; serving and batch scoring load it
from there. When a reference exists (by default the current champion's
profile) the data is checked against it, and every schema and value issue is
reported at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from loopml.core.checker import check_batch
from loopml.core.context import DataValidation, StepContext
from loopml.core.errors import DataError, LoopmlError, SkewError
from loopml.core.profile import PROFILE_FILE, ReferenceProfile, SkewThresholds, build_profile
from loopml.steps.base import StepParams, step

log = logging.getLogger(__name__)

CHAMPION_REFERENCE, NO_REFERENCE = "champion", "none"


class ValidateDataParams(StepParams):
    """Which frame to check, against what, and what to do about skew."""

    frame: str = Field(default="train", description="Frame to profile and check.")
    reference: str = Field(
        default=CHAMPION_REFERENCE,
        description=(
            "What the data must look like: 'champion' (the profile logged with the current "
            "champion of model_name; skipped while there is none), 'none' (only profile), "
            "a model reference NAME@ALIAS or NAME/VERSION, or a profile JSON file."
        ),
    )
    on_failure: Literal["fail", "warn"] = Field(
        default="fail", description="'fail' stops the run on skew; 'warn' records it and goes on."
    )
    thresholds: SkewThresholds = Field(
        default_factory=SkewThresholds, description="How much difference counts as skew."
    )

    @field_validator("reference")
    @classmethod
    def _known_reference(cls, value: str) -> str:
        from loopml.registry.models import parse_model_reference

        if value in (CHAMPION_REFERENCE, NO_REFERENCE) or value.lower().endswith(".json"):
            return value
        try:
            parse_model_reference(value)
        except LoopmlError:
            raise ValueError(
                f"{value!r} is neither 'champion', 'none', a profile .json file nor a model "
                "reference like fraud@champion or fraud/3"
            ) from None
        return value


@step(
    "validate_data",
    params=ValidateDataParams,
    outputs=("reports/reference_profile", "reports/skew", "data_validation", "warnings"),
    inputs=("data/{frame}",),
)
def validate_data(context: StepContext, params: ValidateDataParams) -> None:
    """Profile the data for the model; report schema and value skew against a reference."""
    from loopml.registry.tracking import use_tracking

    frame = context.require_frame(params.frame)
    profile = build_profile(frame, context.experiment.target)
    context.reports["reference_profile"] = profile
    mlflow = use_tracking(context.settings)
    mlflow.log_text(profile.to_json(), PROFILE_FILE)
    reference, source = _reference(context, params)
    if reference is None:
        context.data_validation = DataValidation(reference=source, status="profiled")
        return
    report = check_batch(reference, frame, params.thresholds)
    context.reports["skew"] = report.to_dict()
    mlflow.log_dict(report.to_dict(), "skew_report.json")
    mlflow.log_metrics(
        {
            "skew_schema_issues": len(report.schema_issues),
            "skew_value_issues": len(report.value_issues),
        }
    )
    messages = [issue.message for issue in report.issues]
    context.data_validation = DataValidation(
        reference=source,
        status="ok" if report.ok else ("failed" if params.on_failure == "fail" else "warned"),
        issues=tuple(messages),
        kinds=report.kinds(),
    )
    if report.ok:
        return
    text = (
        f"frame {params.frame!r} differs from the reference profile of {source}: {report.render()}"
    )
    if params.on_failure == "fail":
        raise SkewError(
            f"{text}\nFix the data, or set on_failure: warn on validate_data to train anyway",
            report,
        )
    log.warning(text)
    context.warnings = (*context.warnings, *messages)


def _reference(
    context: StepContext, params: ValidateDataParams
) -> tuple[ReferenceProfile | None, str]:
    """The reference profile the spec asks for, and how to name it in messages."""
    from loopml.registry.models import (
        CHAMPION,
        reference_profile,
        resolve_version,
        version_for_alias,
    )

    settings = context.settings
    if params.reference == NO_REFERENCE:
        return None, "none"
    if params.reference == CHAMPION_REFERENCE:
        name = context.experiment.model_name
        version = version_for_alias(settings, name, CHAMPION)
        if version is None:
            return None, f"{name}@{CHAMPION} (none yet)"
        found = reference_profile(settings, name, version)
        if found is None:
            log.warning(
                "champion %s version %s has no reference profile to check against", name, version
            )
            return None, f"{name} version {version} (no reference profile)"
        return found, f"{name}@{CHAMPION} (version {version})"
    if params.reference.lower().endswith(".json"):
        path = Path(context.resolve_path(params.reference))
        try:
            return ReferenceProfile.from_json(path.read_bytes()), str(path)
        except OSError as exc:
            raise DataError(f"cannot read the reference profile {path}: {exc}") from exc
        except ValueError as exc:
            raise DataError(f"{path} is not a loopml reference profile: {exc}") from exc
    name, version = resolve_version(settings, params.reference)
    if version is None:
        raise DataError(f"reference {params.reference!r}: that alias is not set on {name!r}")
    found = reference_profile(settings, name, version)
    if found is None:
        raise DataError(
            f"reference {params.reference!r} ({name} version {version}) has no {PROFILE_FILE}; "
            "it was trained without validate_data"
        )
    return found, f"{params.reference} (version {version})"
