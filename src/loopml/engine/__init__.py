"""Runs a spec: step order, shared context, timing, resume, one MLflow parent run per run."""

from loopml.engine.runner import PipelineResult, RunObserver, resume_run, run_pipeline
from loopml.engine.validate import CheckedStep, check_spec, check_spec_text, load_spec

__all__ = [
    "CheckedStep",
    "PipelineResult",
    "RunObserver",
    "check_spec",
    "check_spec_text",
    "load_spec",
    "resume_run",
    "run_pipeline",
]
