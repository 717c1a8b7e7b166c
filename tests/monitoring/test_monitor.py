"""The monitor over a real prediction log: alerts to a real webhook, retrains without storms."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.core.settings import Settings
from loopml.monitoring import (
    Alerter,
    MonitorPolicy,
    Reference,
    WindowSpec,
    monitor_model,
    render_report,
)
from loopml.store.monitoring import MonitorStore
from loopml.store.predictions import PredictionLog
from tests.monitoring.data import START, add_labels, features, probability, write_log


class Receiver:
    """A real HTTP server on a free port that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/loopml"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


class Retrains:
    """The retrain hook: records what the monitor asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, model_name: str, reason: str) -> str:
        self.calls.append((model_name, reason))
        return f"job-{len(self.calls)}"


@pytest.fixture
def reference() -> Reference:
    """The training data, with the calibrated model's own answers on it."""
    frame = features(3_000, seed=0)
    answers = pd.Series((probability(frame) >= 0.5).astype(int))
    return Reference.from_frame(frame, target="Class", prediction=answers)


def _run(settings: Settings, reference: Reference, **kwargs: Any) -> Any:
    log = PredictionLog.open(settings.database)
    options: dict[str, Any] = {
        "log_store": log,
        "store": MonitorStore(log.engine),
        "reference": reference,
        "policy": MonitorPolicy(min_rows=100),
        "window": WindowSpec(rows=500),
    }
    options.update(kwargs)
    return monitor_model("fraud", **options)


def test_schema_skew_alerts_a_person_and_does_not_retrain(
    settings: Settings, reference: Reference, receiver: Receiver
) -> None:
    log = PredictionLog.open(settings.database)
    broken = features(500, seed=1, shift=2.0)  # drifted too, but the schema is what is wrong
    broken = broken.rename(columns={"colour": "color"})
    write_log(log, broken)
    retrain = Retrains()
    run = _run(settings, reference, alerter=Alerter(receiver.url), retrain=retrain)
    assert retrain.calls == []
    assert len(receiver.bodies) == 1
    alert = receiver.bodies[0]
    assert alert["model_name"] == "fraud"
    assert "schema_skew" in alert["kinds"]
    assert "colour" in alert["text"] and "color" in alert["text"]
    assert "no retrain" in alert["action"]
    assert run.outcomes[0].result.schema.missing == ["colour"]
    assert run.outcomes[0].result.schema.extra == ["color"]
    stored = MonitorStore(log.engine).checks("fraud", kind="schema_skew")
    assert [check.status for check in stored] == ["alert"]


def test_two_drift_alerts_in_the_cool_down_start_one_retrain(
    settings: Settings, reference: Reference, receiver: Receiver
) -> None:
    log = PredictionLog.open(settings.database)
    write_log(log, features(500, seed=1))
    write_log(log, features(1_000, seed=2, shift=1.5), start=START + timedelta(hours=1))
    retrain = Retrains()
    policy = MonitorPolicy(min_rows=100, cooldown_minutes=60)
    run = _run(settings, reference, alerter=Alerter(receiver.url), retrain=retrain, policy=policy)
    assert [bool(o.findings) for o in run.outcomes] == [False, True, True]
    assert len(retrain.calls) == 1
    assert "data drift" in retrain.calls[0][1]
    assert len(receiver.bodies) == 2
    assert receiver.bodies[0]["action"].startswith("retrain requested")
    assert receiver.bodies[1]["action"].startswith("no retrain: retrain")  # one is in flight
    # a second monitor process, on its own connection, sees the same guard
    more = features(500, seed=3, shift=1.5)
    write_log(log, more, start=START + timedelta(hours=2))
    second = _run(
        settings,
        reference,
        store=MonitorStore(PredictionLog.open(settings.database).engine),
        retrain=retrain,
        policy=policy,
    )
    assert len(second.outcomes) == 1 and len(retrain.calls) == 1
    store = MonitorStore(log.engine)
    (request,) = store.retrains("fraud")
    assert request.job_id == "job-1" and request.status == "requested"
    store.finish_retrain(request.id)
    # the retrain is done, but the cool-down (from its request) still holds
    claim = store.claim_retrain(
        "fraud", "again", cooldown=timedelta(hours=1), stale_after=policy.stale_after
    )
    assert not claim.granted and "cool-down" in (claim.blocked_by or "")
    later = request.requested_at + timedelta(hours=1, seconds=1)
    claim = store.claim_retrain(
        "fraud", "again", cooldown=timedelta(hours=1), stale_after=policy.stale_after, now=later
    )
    assert claim.granted


def test_performance_from_labels_and_estimate_are_stored_per_window(
    settings: Settings, reference: Reference
) -> None:
    log = PredictionLog.open(settings.database)
    frame = features(1_000, seed=5)
    ids = write_log(log, frame, labels=False)
    log.add_feedback(ids[0], int(frame["Class"][0]))
    add_labels(log, ids[1:500], frame["Class"][1:500])  # only the first window has labels yet
    run = _run(settings, reference)
    first, second = (outcome.result for outcome in run.outcomes)
    assert first.performance["rows"] == 500
    p = 1 / (1 + (-2 * frame["x1"][:500]).map(lambda v: 2.718281828459045**v))
    truth = frame["Class"][:500]
    assert first.performance["accuracy"] == pytest.approx(((p >= 0.5).astype(int) == truth).mean())
    assert second.performance == {}
    assert second.estimated["accuracy"] == pytest.approx(first.estimated["accuracy"], abs=0.05)
    stored = MonitorStore(log.engine)
    assert len(stored.checks("fraud", kind="performance")) == 1
    assert len(stored.checks("fraud", kind="estimated_performance")) == 2
    # resuming checks only what is new
    assert _run(settings, reference).outcomes == []


def test_time_windows(settings: Settings, reference: Reference) -> None:
    log = PredictionLog.open(settings.database)
    write_log(log, features(900, seed=6))  # one row a second: 15 minutes
    run = _run(settings, reference, window=WindowSpec.parse("5m"))
    assert [o.result.rows for o in run.outcomes] == [300, 300, 300]
    assert run.outcomes[1].result.start == START + timedelta(minutes=5)


def test_report_has_a_section_per_window_and_feature(
    settings: Settings, reference: Reference
) -> None:
    log = PredictionLog.open(settings.database)
    write_log(log, features(500, seed=1))
    write_log(log, features(500, seed=2, shift=1.5), start=START + timedelta(hours=1))
    _run(settings, reference)
    html = render_report("fraud", MonitorStore(log.engine).checks("fraud"))
    assert len(re.findall(r'<section id="window-\d+" class="window">', html)) == 2
    for window in (0, 1):
        for feature in ("x1", "x2", "colour", "prediction"):
            assert f'id="window-{window}-{feature}"' in html
    assert html.count("data:image/png;base64,") == 1 + 2 * 4
    assert "data drift" in html


def test_cli_monitors_and_writes_the_report(
    loopml_env: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    from loopml.cli.main import app

    log = PredictionLog.open(loopml_env.database)
    write_log(log, features(600, seed=1, shift=1.5).rename(columns={"x2": "x_two"}))
    data = tmp_path / "reference.csv"
    features(2_000, seed=0).to_csv(data, index=False)
    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "fraud",
            "--reference",
            str(data),
            "--target",
            "Class",
            "--window",
            "300",
            "--report",
            str(report),
            "--webhook",
            receiver.url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "monitoring fraud" in result.output
    assert "schema skew needs a person" in result.output
    assert report.exists() and 'id="window-1"' in report.read_text()
    assert len(receiver.bodies) == 2
    bad = CliRunner().invoke(app, ["monitor", "fraud", "--reference", str(data), "--window", "3x"])
    assert bad.exit_code == 2 and "--window" in bad.output


def test_policies_are_read_per_model(tmp_path: Path) -> None:
    from loopml.core.errors import ConfigError
    from loopml.monitoring import load_policies, policy_for

    path = tmp_path / "policy.yaml"
    path.write_text("default:\n  drift_share: 0.3\nfraud:\n  cooldown_minutes: 5\n")
    policies = load_policies(path)
    assert policy_for("fraud", policies).cooldown == timedelta(minutes=5)
    assert policy_for("other", policies).drift_share == 0.3
    assert policy_for("other", policies, drift_share=0.9).drift_share == 0.9
    path.write_text("fraud:\n  drift_shar: 0.3\n")
    with pytest.raises(ConfigError, match="drift_shar"):
        load_policies(path)


def test_prediction_drift_compares_with_the_champions_answers_on_the_reference(
    tmp_path: Path, tracking_uri: str
) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopml.lifecycle import register
    from loopml.monitoring.champion import champion_predictions
    from loopml.registry.models import CHAMPION, set_alias
    from loopml.registry.tracking import use_tracking

    settings = Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{tmp_path / 'loopml.db'}",
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    training = features(3_000, seed=0)
    numeric = training[["x1", "x2"]]
    assert champion_predictions(settings, "churn_lr", numeric) is None  # nothing registered yet
    mlflow = use_tracking(settings)
    model = LogisticRegression().fit(numeric, training["Class"])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=numeric.head(3))
    version, _ = register(settings, info.model_uri, "churn_lr", {})  # trust recorded
    set_alias(settings, "churn_lr", CHAMPION, version.version)
    scored = champion_predictions(
        settings, "churn_lr", training[["x1", "x2", "Class"]], target="Class"
    )
    assert scored is not None and scored[0] == version.version
    reference = Reference.from_frame(numeric, prediction=scored[1])
    log = PredictionLog.open(settings.database)
    write_log(log, features(600, seed=1), model="churn_lr", drop=("colour",))
    write_log(
        log,
        features(600, seed=2, shift=1.0),
        model="churn_lr",
        drop=("colour",),
        start=START + timedelta(hours=1),
    )
    run = monitor_model(
        "churn_lr",
        log_store=log,
        store=MonitorStore(log.engine),
        reference=reference,
        policy=MonitorPolicy(),
        window=WindowSpec(rows=600),
    )
    steady, shifted = (outcome.result.prediction_drift for outcome in run.outcomes)
    assert steady is not None and not steady.drifted
    assert shifted is not None and shifted.drifted and shifted.method == "jensenshannon"


def test_a_failing_webhook_and_a_failing_retrain_hook_are_recorded(
    settings: Settings, reference: Reference
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    log = PredictionLog.open(settings.database)
    write_log(log, features(500, seed=4, shift=1.5))

    def broken(model_name: str, reason: str) -> str:
        raise RuntimeError("queue unreachable")

    run = _run(settings, reference, alerter=Alerter(dead, timeout=2), retrain=broken)
    (outcome,) = run.outcomes
    assert outcome.alert_sent is False
    assert outcome.action == "retrain failed to start: RuntimeError: queue unreachable"
    store = MonitorStore(log.engine)
    (request,) = store.retrains("fraud")
    assert request.status == "failed" and "queue unreachable" in (request.error or "")
    (decision,) = store.checks("fraud", kind="decision")
    assert decision.figures["alert_sent"] is False and decision.status == "alert"
