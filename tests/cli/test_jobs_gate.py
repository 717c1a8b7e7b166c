"""``loopml jobs show`` says what the gate decided in the job's run, as text and as JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.context import GateDecision
from loopml.core.settings import Settings
from loopml.core.status import Status
from loopml.store import RunStore
from loopml.store.jobs import JobStore
from loopml.store.runs import Provenance

GATE = {
    "decision": "rejected",
    "reason": "challenger F1 0.71 is not 0.02 better than champion 0.73",
    "model_name": "fraud",
    "metric": "F1",
    "frame": "test",
    "rows": 300,
    "challenger_version": 4,
    "challenger_score": 0.71,
    "champion_version": "3",
    "champion_score": 0.73,
    "threshold": None,
    "min_delta": 0.02,
}


def _job_with_run(settings: Settings, values: dict[str, object]) -> str:
    runs = RunStore(settings.database)
    run_id = _run(runs, values)
    runs.close()
    jobs = JobStore(settings.database)
    job = jobs.create(f"job{run_id[:20]}", kind="training", queue="training", model_name="fraud")
    jobs.start_attempt(job.id, "w1")
    jobs.progress(job.id, run_id=run_id)
    jobs.finish(job.id, Status.SUCCEEDED, registered=("fraud", "4"))
    jobs.close()
    return job.id


def test_jobs_show_has_the_gate_decision(loopml_env: Settings) -> None:
    gated = _job_with_run(loopml_env, {"gate": GATE, "gate_decision": "rejected"})
    plain = _job_with_run(loopml_env, {"best_model": "lr"})
    runner = CliRunner()
    shown = runner.invoke(app, ["jobs", "show", gated])
    assert shown.exit_code == 0, shown.output
    assert f"rejected: {GATE['reason']}" in shown.output
    as_json = json.loads(runner.invoke(app, ["jobs", "show", gated, "-o", "json"]).stdout)
    assert as_json["gate"] == {
        "decision": "rejected",
        "reason": GATE["reason"],
        "metric": "F1",
        "challenger_version": "4",
        "challenger_score": 0.71,
        "champion_version": "3",
        "champion_score": 0.73,
    }
    assert as_json["registered_model"] == {"name": "fraud", "version": "4"}
    assert "fraud version 4" in shown.output
    ungated = json.loads(runner.invoke(app, ["jobs", "show", plain, "-o", "json"]).stdout)
    assert ungated["gate"] is None
    assert "gate" in runner.invoke(app, ["jobs", "show", plain]).output


def test_the_run_view_reads_the_gate_back_typed(loopml_env: Settings) -> None:
    gated = _job_with_run(loopml_env, {"gate": GATE})
    jobs = JobStore(loopml_env.database)
    run_id = jobs.get(gated).run_id
    jobs.close()
    assert run_id is not None
    runs = RunStore(loopml_env.database)
    try:
        gate = runs.get_run(run_id).gate
        ungated = runs.get_run(_run(runs, {"gate": "not a record"})).gate
    finally:
        runs.close()
    assert isinstance(gate, GateDecision)
    assert (gate.decision, gate.challenger_version, gate.champion_version) == ("rejected", "4", "3")
    assert gate.min_delta == 0.02 and gate.threshold is None and gate.rows == 300
    assert ungated is None


def _run(runs: RunStore, values: dict[str, object]) -> str:
    run_id = runs.create_run(
        spec_text="{}",
        spec_hash="h",
        spec_source=None,
        experiment_name="e",
        model_name="fraud",
        provenance=Provenance("worker", "host", "user", "0", None),
    )
    runs.update_run(run_id, values=values)
    return run_id
