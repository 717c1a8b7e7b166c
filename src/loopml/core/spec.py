"""Pipeline specs: reading them leniently and checking their shape.

A spec is ``{"pipeline": [{"MLSteps": [{<step>: {params}}, ...]}], "experiment_config": {...}}``,
as JSON (trailing commas and comments allowed, as people write them) or YAML.
This module checks the frame and the experiment config; each step's own
parameters are checked against that step's model by the engine, which knows
the step registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from loopml.core.errors import SpecError, SpecIssue
from loopml.core.suggest import closest
from loopml.core.validation import choice_error, issues_from_validation_error
from loopml.core.vocabulary import METRICS, PROBLEM_TYPES, canonical_metric, problem_of_metric

TOP_LEVEL_KEYS = ("pipeline", "experiment_config")
STAGE_KEYS = ("MLSteps",)
NAME_CHARACTERS = 255
"""Longest experiment or model name: the width of the metadata store's columns."""


class ExperimentConfig(BaseModel):
    """What the pipeline is about: where it is tracked, what it predicts, how it is judged."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    experiment_name: str
    model_name: str
    problem_type: str
    main_metric: str
    target: str

    @field_validator("experiment_name", "model_name", "target")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("experiment_name", "model_name")
    @classmethod
    def _fits_the_store(cls, value: str) -> str:
        # runs and jobs keep both in 255-character columns; PostgreSQL refuses longer
        if len(value) > NAME_CHARACTERS:
            raise ValueError(f"is {len(value)} characters long; at most {NAME_CHARACTERS}")
        return value

    @field_validator("problem_type")
    @classmethod
    def _known_problem(cls, value: str) -> str:
        if value not in PROBLEM_TYPES:
            raise choice_error("problem type", value, PROBLEM_TYPES)
        return value

    @field_validator("main_metric")
    @classmethod
    def _metric_fits_problem(cls, value: str, info: ValidationInfo) -> str:
        problem = info.data.get("problem_type")
        allowed = METRICS.get(problem, ()) if isinstance(problem, str) else ()
        metric = canonical_metric(value)
        if metric is None:
            raise choice_error("metric", value, allowed or sum(METRICS.values(), ()))
        if allowed and metric not in allowed:
            raise ValueError(
                f"{problem_of_metric(metric)} metric {value!r} does not fit problem_type "
                f"{problem!r}; allowed: {', '.join(allowed)}"
            )
        return metric


@dataclass(frozen=True)
class StepCall:
    """One step as written in the spec: its name, raw parameters and where it stands."""

    name: str
    params: Mapping[str, Any]
    location: str

    @property
    def path(self) -> str:
        """The spec path of this step's parameters, e.g. ``pipeline[0].MLSteps[1].train_model``."""
        return f"{self.location}.{self.name}"


@dataclass(frozen=True)
class PipelineSpec:
    """A spec whose frame and experiment config are valid. Step parameters are checked later."""

    steps: tuple[StepCall, ...]
    experiment: ExperimentConfig
    document: Mapping[str, Any]
    text: str
    source: Path | None

    @property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical document: formatting and key order do not change it."""
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def base_dir(self) -> Path:
        """Relative data paths in the spec resolve against the spec file's folder."""
        return self.source.parent if self.source is not None else Path.cwd()

    @property
    def label(self) -> str | None:
        """How errors name this spec: its file, when it came from one."""
        return str(self.source) if self.source is not None else None


@dataclass(frozen=True)
class SpecDraft:
    """A parsed spec whose frame may still have issues, so later checks can add theirs."""

    steps: tuple[StepCall, ...]
    experiment: ExperimentConfig | None
    document: Mapping[str, Any]
    text: str
    source: Path | None
    issues: tuple[SpecIssue, ...]

    @property
    def label(self) -> str | None:
        return str(self.source) if self.source is not None else None

    def complete(self) -> PipelineSpec:
        """The spec, or one SpecError with every frame issue."""
        if self.issues or self.experiment is None:
            raise SpecError(self.issues, self.label)
        return PipelineSpec(self.steps, self.experiment, self.document, self.text, self.source)


def read_spec_text(path: Path) -> str:
    """The text of the spec file at ``path``, or a SpecError saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue("", f"spec file {path} does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue("", f"cannot read spec file {path}: {exc}")]) from exc


def read_spec_file(path: Path) -> PipelineSpec:
    """Read and check the frame of the spec at ``path``."""
    return parse_spec(read_spec_text(path), source=path.resolve())


def parse_spec(text: str, source: Path | None = None) -> PipelineSpec:
    """Parse ``text`` (JSON, lenient, or YAML) and check its frame; raise one SpecError for all."""
    return draft_spec(text, source).complete()


def draft_spec(text: str, source: Path | None = None) -> SpecDraft:
    """Parse ``text`` and collect the frame's issues without raising for them.

    Only text that is not JSON/YAML at all, or not a mapping, raises here.
    """
    label = str(source) if source is not None else None
    document = _load_document(text, source)
    issues: list[SpecIssue] = []
    if not isinstance(document, dict):
        raise SpecError(
            [
                SpecIssue(
                    "",
                    "a spec must be a mapping",
                    found=type(document).__name__,
                    allowed="keys " + ", ".join(TOP_LEVEL_KEYS),
                )
            ],
            label,
        )
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            issues.append(
                SpecIssue(
                    str(key),
                    "unknown top-level key",
                    found=repr(key),
                    allowed=", ".join(TOP_LEVEL_KEYS),
                    suggestion=closest(str(key), TOP_LEVEL_KEYS),
                )
            )
    steps = _read_steps(document.get("pipeline"), issues)
    experiment = _read_experiment(document.get("experiment_config"), issues)
    return SpecDraft(tuple(steps), experiment, document, text, source, tuple(issues))


MAX_DEPTH = 64
"""Deepest nesting a spec may have; real specs stay under ten levels."""
MAX_NODES = 100_000
"""Most values a spec may hold once YAML aliases are expanded (a billion-laughs bomb is refused)."""


def _load_document(text: str, source: Path | None) -> Any:
    label = str(source) if source is not None else None
    suffix = source.suffix.lower() if source is not None else ""
    try:
        if suffix in (".yaml", ".yml"):
            document = _load_yaml(text, label)
        elif suffix in (".json", ".json5") or _uncommented(text).startswith(("{", "[")):
            document = _load_json(text, label)
        else:
            document = _load_yaml(text, label)
        bounded = _within_bounds(document)
    except RecursionError:  # the parsers recurse once per nesting level
        bounded = False
    if not bounded:
        raise SpecError(
            [
                SpecIssue(
                    "",
                    f"spec nested deeper than {MAX_DEPTH} levels or holding more than "
                    f"{MAX_NODES} values (YAML aliases expanded); no spec needs that much",
                )
            ],
            label,
        )
    return document


def _within_bounds(document: Any) -> bool:
    """Whether ``document`` is at most MAX_DEPTH deep with at most MAX_NODES values.

    Walked without recursion and counting aliased values each time they are
    reached, so both a nesting bomb and an alias bomb stop at the limit.
    """
    pending: list[tuple[Any, int]] = [(document, 1)]
    seen = 0
    while pending:
        value, depth = pending.pop()
        seen += 1
        if seen > MAX_NODES or depth > MAX_DEPTH:
            return False
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return True


def _uncommented(text: str) -> str:
    """``text`` without leading whitespace and JSON5 comments, to tell JSON from YAML."""
    rest = text.lstrip()
    while rest.startswith(("//", "/*")):
        if rest.startswith("//"):
            rest = rest.partition("\n")[2].lstrip()
        else:
            rest = rest.partition("*/")[2].lstrip()
    return rest


def _load_json(text: str, label: str | None) -> Any:
    import json5

    try:
        return json5.loads(text)
    except ValueError as exc:
        raise SpecError([SpecIssue("", f"not valid JSON: {exc}")], label) from exc


def _load_yaml(text: str, label: str | None) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue("", f"not valid YAML: {exc}")], label) from exc


def _read_steps(pipeline: Any, issues: list[SpecIssue]) -> list[StepCall]:
    if pipeline is None:
        issues.append(
            SpecIssue(
                "pipeline",
                "required key is missing",
                allowed='a list like [{"MLSteps": [{"<step>": {...}}]}]',
            )
        )
        return []
    if not isinstance(pipeline, list) or not pipeline:
        issues.append(
            SpecIssue(
                "pipeline",
                "must be a non-empty list of stages",
                found=_kind(pipeline),
                allowed='[{"MLSteps": [...]}]',
            )
        )
        return []
    steps: list[StepCall] = []
    for i, stage in enumerate(pipeline):
        here = f"pipeline[{i}]"
        if not isinstance(stage, dict):
            issues.append(
                SpecIssue(
                    here,
                    "a stage must be a mapping",
                    found=_kind(stage),
                    allowed='{"MLSteps": [...]}',
                )
            )
            continue
        for key in stage:
            if key not in STAGE_KEYS:
                issues.append(
                    SpecIssue(
                        f"{here}.{key}",
                        "unknown stage key",
                        found=repr(key),
                        allowed=", ".join(STAGE_KEYS),
                        suggestion=closest(str(key), STAGE_KEYS),
                    )
                )
        calls = stage.get("MLSteps")
        if calls is None:
            if not any(closest(str(k), STAGE_KEYS) for k in stage):
                issues.append(SpecIssue(f"{here}.MLSteps", "required key is missing"))
            continue
        if not isinstance(calls, list) or not calls:
            issues.append(
                SpecIssue(
                    f"{here}.MLSteps", "must be a non-empty list of steps", found=_kind(calls)
                )
            )
            continue
        for j, call in enumerate(calls):
            location = f"{here}.MLSteps[{j}]"
            if not isinstance(call, dict) or len(call) != 1:
                issues.append(
                    SpecIssue(
                        location,
                        "each step is a mapping with exactly one key, the step name",
                        found=_kind(call),
                        allowed='{"<step name>": {<parameters>}}',
                    )
                )
                continue
            ((name, params),) = call.items()
            if params is None:
                params = {}
            if not isinstance(params, dict):
                issues.append(
                    SpecIssue(
                        f"{location}.{name}",
                        "step parameters must be a mapping",
                        found=_kind(params),
                        allowed="{} or {<name>: <value>}",
                    )
                )
                continue
            steps.append(StepCall(str(name), params, location))
    return steps


def _read_experiment(config: Any, issues: list[SpecIssue]) -> ExperimentConfig | None:
    if config is None:
        issues.append(
            SpecIssue(
                "experiment_config",
                "required key is missing",
                allowed=", ".join(ExperimentConfig.model_fields),
            )
        )
        return None
    if not isinstance(config, dict):
        issues.append(SpecIssue("experiment_config", "must be a mapping", found=_kind(config)))
        return None
    try:
        return ExperimentConfig.model_validate(config)
    except ValidationError as exc:
        issues.extend(issues_from_validation_error(exc, ExperimentConfig, "experiment_config"))
        return None


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"
