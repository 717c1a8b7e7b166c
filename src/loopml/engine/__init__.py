"""Runs a spec: step order, shared context, timing, resume, one MLflow parent run per run."""

from loopml.engine.jobs import JobRun, run_job
from loopml.engine.runner import PipelineResult, RunObserver, resume_run, run_pipeline
from loopml.engine.validate import CheckedSpec, CheckedStep, check_spec, check_spec_text, load_spec

__all__ = [
    "CheckedSpec",
    "CheckedStep",
    "JobRun",
    "PipelineResult",
    "RunObserver",
    "check_spec",
    "check_spec_text",
    "load_spec",
    "resume_run",
    "run_job",
    "run_pipeline",
]
