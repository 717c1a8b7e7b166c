"""A spec whose local data file is missing is a spec problem, said before anything is queued.

The spec check (:func:`loopml.engine.load_spec`) peeks at the training
frame's file only; this one looks at every ``load_data_from_file`` step (a
test frame too), so ``validate`` and ``submit`` never pass a spec that could
only fail on the worker. Each missing file is an issue at its parameter,
worded as the engine words it (:class:`~loopml.core.errors.MissingDataFileError`).
"""

from __future__ import annotations

from pathlib import Path

from loopml.core.context import resolve_path
from loopml.core.errors import LoopmlError, MissingDataFileError, SpecError, SpecIssue
from loopml.core.spec import PipelineSpec, read_spec_file

FILE_STEPS = {"load_data_from_file": "path"}


def missing_data_files(spec: PipelineSpec) -> list[SpecIssue]:
    """An issue for every local data file the spec names that does not exist."""
    issues = []
    for call in spec.steps:
        key = FILE_STEPS.get(call.name)
        if key is None:
            continue
        value = call.params.get(key)
        if not isinstance(value, str) or not value.strip() or "://" in value:
            continue
        path = resolve_path(value, spec.base_dir)
        if not Path(path).exists():
            issues.append(MissingDataFileError(path, key, spec.base_dir).issue(call.path))
    return issues


def check_data_files(spec: PipelineSpec | Path) -> None:
    """Raise a :class:`SpecError` naming every missing local data file of ``spec``."""
    if isinstance(spec, Path):
        try:
            spec = read_spec_file(spec)
        except LoopmlError:
            return  # the full check that follows reports what is wrong with the spec
    issues = missing_data_files(spec)
    if issues:
        raise SpecError(issues, spec.label)
