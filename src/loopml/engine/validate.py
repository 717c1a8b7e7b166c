"""Everything that can be checked about a spec before anything runs.

The frame and experiment config were checked when the spec was parsed; here
each step's name is looked up, its parameters validated against the step's
own model, each data step's parameters held to the data policy (without
reading anything), and the target column looked for in the data when a
loader can name its columns cheaply and the caller allows it (``peek_data``:
the CLI on one's own machine, never the API). All issues are collected and
raised together.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from loopml.core.access import DataPolicy
from loopml.core.errors import (
    DataError,
    MissingDataFileError,
    PluginError,
    SpecError,
    SpecIssue,
)
from loopml.core.spec import ExperimentConfig, PipelineSpec, StepCall, draft_spec, read_spec_text
from loopml.core.suggest import closest
from loopml.core.validation import issues_from_validation_error
from loopml.steps.base import StepDefinition
from loopml.steps.registry import StepRegistry

TRAINING_FRAME = "train"


@dataclass(frozen=True)
class CheckedStep:
    """A step of the spec with its definition and validated parameters."""

    position: int
    call: StepCall
    definition: StepDefinition[Any]
    params: BaseModel


@dataclass(frozen=True)
class CheckedSpec:
    """A spec that passed every check, with its steps resolved and parameters validated.

    Only :func:`load_spec`, :func:`check_spec` and :func:`check_spec_text`
    make one, so holding a ``CheckedSpec`` is the proof that the checks ran:
    :func:`loopml.engine.run_pipeline` and :func:`loopml.engine.run_job` take
    it as it is and never check again (nor read the data's header again).
    """

    spec: PipelineSpec
    steps: tuple[CheckedStep, ...]

    @property
    def text(self) -> str:
        """The spec as written, recorded with every run."""
        return self.spec.text

    @property
    def spec_hash(self) -> str:
        return self.spec.spec_hash

    @property
    def source(self) -> Path | None:
        """The spec file, when it came from one."""
        return self.spec.source

    @property
    def base_dir(self) -> Path:
        """The folder relative data paths resolve against."""
        return self.spec.base_dir

    @property
    def experiment(self) -> ExperimentConfig:
        return self.spec.experiment

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(item.call.name for item in self.steps)


def load_spec(
    path: Path,
    registry: StepRegistry,
    *,
    peek_data: bool = True,
    policy: DataPolicy | None = None,
) -> CheckedSpec:
    """Read the spec at ``path`` and check everything; all issues of the file in one SpecError."""
    return check_spec_text(
        read_spec_text(path), registry, source=path.resolve(), peek_data=peek_data, policy=policy
    )


def check_spec_text(
    text: str,
    registry: StepRegistry,
    *,
    source: Path | None = None,
    peek_data: bool = True,
    policy: DataPolicy | None = None,
) -> CheckedSpec:
    """Parse spec ``text`` and check everything; every issue (frame, steps, data) in one SpecError.

    ``peek_data=False`` checks structure and vocabulary only: no file is opened,
    no database contacted. ``policy`` says which data the spec may name (see
    :class:`~loopml.core.access.DataPolicy`); it is checked without reading.
    """
    draft = draft_spec(text, source=source)
    issues = list(draft.issues)
    checked = _check_steps(draft.steps, draft.experiment, registry, issues)
    issues.extend(_order_issues(checked))
    allowed = _allowed(checked, draft.source, policy or DataPolicy(), issues)
    if peek_data and draft.experiment is not None:
        issues.extend(_target_issues(draft.experiment.target, draft.source, checked, allowed))
    if issues or draft.experiment is None:
        raise SpecError(issues, draft.label)
    return CheckedSpec(draft.complete(), tuple(checked))


def check_spec(
    spec: PipelineSpec,
    registry: StepRegistry,
    *,
    peek_data: bool = True,
    policy: DataPolicy | None = None,
) -> CheckedSpec:
    """The spec with its steps ready to run, or one SpecError listing every problem.

    ``peek_data`` lets loaders read a file header or run a zero-row read-only
    query to find the target column; steps that need the network are never
    contacted. ``policy`` (default: unrestricted) is checked without reading.
    """
    issues: list[SpecIssue] = []
    checked = _check_steps(spec.steps, spec.experiment, registry, issues)
    issues.extend(_order_issues(checked))
    allowed = _allowed(checked, spec.source, policy or DataPolicy(), issues)
    if peek_data:
        issues.extend(_target_issues(spec.experiment.target, spec.source, checked, allowed))
    _raise_if(issues, spec)
    return CheckedSpec(spec, tuple(checked))


def _allowed(
    checked: list[CheckedStep], source: Path | None, policy: DataPolicy, issues: list[SpecIssue]
) -> set[int]:
    """Positions of the steps whose data the policy allows; an issue for each other one."""
    base_dir = source.parent if source is not None else None
    allowed: set[int] = set()
    for item in checked:
        definition = item.definition
        if definition.check_access is not None:
            try:
                definition.check_access(item.params, base_dir, policy)
            except DataError as exc:  # AccessError, or what else the check found wrong
                field = getattr(exc, "field", None)  # a parameter the check blames
                where = f"{item.call.path}.{field}" if field else item.call.path
                issues.append(SpecIssue(where, str(exc)))
                continue
        elif policy.restricted and definition.reads_data:
            issues.append(
                SpecIssue(
                    item.call.path,
                    f"step {item.call.name!r} reads data loopml cannot hold to the data roots; "
                    "it is not allowed in specs submitted over HTTP (use `loopml submit`)",
                )
            )
            continue
        allowed.add(item.position)
    return allowed


def _raise_if(issues: list[SpecIssue], spec: PipelineSpec) -> None:
    if issues:
        raise SpecError(issues, spec.label)


def _check_steps(
    calls: tuple[StepCall, ...],
    experiment: ExperimentConfig | None,
    registry: StepRegistry,
    issues: list[SpecIssue],
) -> list[CheckedStep]:
    checked: list[CheckedStep] = []
    for position, call in enumerate(calls):
        definition = _definition(call, registry, issues)
        if definition is None:
            continue
        try:
            params = definition.parse(dict(call.params), experiment)
        except ValidationError as exc:
            issues.extend(issues_from_validation_error(exc, definition.params, call.path))
            continue
        checked.append(CheckedStep(position, call, definition, params))
    return checked


def _order_issues(checked: list[CheckedStep]) -> list[SpecIssue]:
    """Steps placed before every step that writes what they read (their declared inputs).

    A step that declares no outputs (an old plugin) may write anything, so
    from there on nothing is refused.
    """
    issues: list[SpecIssue] = []
    written: list[str] = []
    for item in checked:
        declared = item.definition.declared_outputs(item.params)
        for need in item.definition.declared_inputs(item.params):
            if any(fnmatch.fnmatchcase(need, pattern) for pattern in written):
                continue
            makers = [
                later.call.name
                for later in checked
                if later.position > item.position
                and any(
                    fnmatch.fnmatchcase(need, pattern)
                    for pattern in later.definition.declared_outputs(later.params) or ()
                )
            ]
            remedy = (
                f"put it after {makers[0]}"
                if makers
                else "add a step before it that writes it (a load_data_* step writes data/<frame>, "
                "train_model writes the model)"
            )
            issues.append(
                SpecIssue(
                    item.call.path,
                    f"{item.call.name} reads {need}, which no step before it writes; {remedy}",
                )
            )
        if declared is None:
            return issues
        written.extend(declared)
    return issues


def _definition(
    call: StepCall, registry: StepRegistry, issues: list[SpecIssue]
) -> StepDefinition[Any] | None:
    names = registry.names()
    if call.name not in names:
        issues.append(
            SpecIssue(
                call.path,
                "unknown step",
                found=repr(call.name),
                allowed=", ".join(names),
                suggestion=closest(call.name, names),
            )
        )
        return None
    try:
        return registry.get(call.name)
    except PluginError as exc:
        issues.append(SpecIssue(call.path, str(exc)))
        return None


def _target_issues(
    target: str, source: Path | None, checked: list[CheckedStep], allowed: set[int]
) -> list[SpecIssue]:
    """A missing target column, found from the first loader of the training frame.

    A loader the data policy refused is never peeked at.
    """
    base_dir = source.parent if source is not None else Path.cwd()
    for item in checked:
        definition = item.definition
        if getattr(item.params, "frame", None) != TRAINING_FRAME:
            continue
        if item.position not in allowed:
            return []
        if definition.peek_columns is None or definition.needs_network:
            return []
        try:
            columns = definition.peek_columns(item.params, base_dir)
        except MissingDataFileError as exc:
            return [exc.issue(item.call.path)]
        except DataError as exc:
            return [SpecIssue(item.call.path, str(exc))]
        if columns is None or target in columns:
            return []
        return [target_issue(target, columns, item.call.path)]
    return []


def target_issue(target: str, columns: list[str], source: str) -> SpecIssue:
    """The issue for a target column the data does not have."""
    shown = ", ".join(columns[:40]) + (", ..." if len(columns) > 40 else "")
    return SpecIssue(
        "experiment_config.target",
        f"column {target!r} is not in the data loaded by {source}",
        allowed=shown,
        suggestion=closest(target, columns),
    )
