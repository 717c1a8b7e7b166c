"""A plugin step that runs code from its own folder, as an MLproject step does."""

from __future__ import annotations

from pathlib import Path

from loopml.core.context import StepContext
from loopml.steps import StepParams, step


class ProjectParams(StepParams):
    """The folder whose sources the step runs."""

    folder: str


@step("run_project_for_tests", params=ProjectParams, outputs=("values/project",))
def run_project(context: StepContext, params: ProjectParams) -> None:
    """Add the project folder to the code the run's hash covers."""
    context.code_paths.append(Path(params.folder))
    context.values["project"] = params.folder
