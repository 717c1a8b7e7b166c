"""A spec whose local data file is missing is a spec problem, said before anything is queued.

``validate`` used to answer "ok" and ``submit`` to queue a job that could
only fail on the worker. This check reports each missing file as a spec
issue with its spec path and the absolute path looked at (exit code 2).
"""

from __future__ import annotations

from pathlib import Path

from loopml.core.context import resolve_path
from loopml.core.errors import LoopmlError, SpecError, SpecIssue
from loopml.core.spec import PipelineSpec, read_spec_file

FILE_STEPS = {"load_data_from_file": "path"}


def missing_data_files(spec: PipelineSpec) -> list[SpecIssue]:
    """An issue for every local data file the spec names that does not exist."""
    issues = []
    for call in spec.steps:
        key = FILE_STEPS.get(call.name)
        value = call.params.get(key) if key else None
        if not isinstance(value, str) or not value.strip() or "://" in value:
            continue
        path = Path(resolve_path(value, spec.base_dir))
        if not path.exists():
            issues.append(
                SpecIssue(
                    f"{call.path}.{key}",
                    f"no such file {str(path)!r}",
                    allowed="an existing file; relative paths resolve against the spec's folder "
                    f"({spec.base_dir})",
                )
            )
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
