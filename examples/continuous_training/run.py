"""The whole loop with no person in it: serve, drift, detect, retrain, gate, promote, swap.

    python examples/continuous_training/run.py [--windows 8] [--rows 400] [--drift-at 4]

On embedded defaults (SQLite, local MLflow, the embedded broker; no servers):

1. trains the spec in this folder on pre-drift data; the gate makes it champion;
2. starts a training worker (``loopml worker``) and the model server
   (``loopml serve --model ct_demo@champion``, watching the alias every second);
3. streams windows of rows to ``/predict`` and their labels to ``/feedback``;
   from window ``--drift-at`` on, the world changes (``stream.py``);
4. after each window runs one monitoring pass: drift, prediction drift and
   accuracy from the labels against the champion's training data; the policy
   (``policy.yaml``) asks for a retrain, which queues the champion's own spec
   pointed at the newest labelled window;
5. the worker trains, the spec's ``validate_model`` gate compares challenger
   and champion on the same fresh holdout and promotes the winner, and the
   server swaps to it; later windows are scored by the new champion.

It prints a timeline and returns its figures (the test in
``tests/examples/test_continuous_training.py`` runs it on small data).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import json5
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stream import TARGET, make_rows, window  # noqa: E402

MODEL = "ct_demo"


@dataclass
class Timeline:
    """What happened, window by window, and the figures the test checks."""

    drift_at: int
    lines: list[str] = field(default_factory=list)
    served_versions: list[str] = field(default_factory=list)
    live_accuracy: list[float] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)
    retrain_windows: list[int] = field(default_factory=list)
    retrain_jobs: list[str] = field(default_factory=list)
    first_champion: str = ""
    final_champion: str = ""
    old_champion_accuracy: float = 0.0
    new_champion_accuracy: float = 0.0

    def say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.lines.append(f"{stamp}  {text}")
        print(f"{stamp}  {text}", flush=True)


def run_demo(
    home: Path, *, windows: int = 8, rows: int = 400, drift_at: int = 4, seed: int = 7
) -> Timeline:
    """Run the loop in ``home`` (a fresh LOOPML_HOME) and return its timeline."""
    from loopml.core.settings import Settings

    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        home=home, tracking_uri=None, database_url=None, artifact_root=None, broker_url=None
    )
    env = _env(home)
    timeline = Timeline(drift_at)
    data = home / "data"
    data.mkdir(exist_ok=True)
    train = data / "train.csv"
    fresh = data / "fresh.csv"
    make_rows(rows * 6, drifted=False, seed=seed).to_csv(train, index=False)
    spec_path = _write_spec(home, train)
    policy_path = _write_policy(home, fresh)

    timeline.say(f"training the first champion on {train.name} ({rows * 6} rows, pre-drift)")
    _loopml(env, "run", str(spec_path))
    timeline.first_champion = _champion(settings)
    timeline.say(f"champion is {MODEL} version {timeline.first_champion}")

    port = _free_port()
    services = [
        _start(env, "worker", "--queues", "training", "--concurrency", "1"),
        _start(
            env,
            "serve",
            "--model",
            f"{MODEL}@champion",
            "--port",
            str(port),
            "--watch-interval",
            "1",
        ),
    ]
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        _wait_ready(client, services)
        timeline.say(f"serving on port {port}; worker listening on the training queue")
        for index in range(windows):
            frame = window(index, rows, drift_at=drift_at, seed=seed)
            version, accuracy = _serve_window(client, frame)
            timeline.served_versions.append(version)
            timeline.live_accuracy.append(accuracy)
            frame.to_csv(fresh, index=False)  # the newest labelled data, for a retrain
            _wait_logged(settings, (index + 1) * rows)
            outcome = _monitor(settings, policy_path, rows)
            state = "drifted world" if index >= drift_at else "same world"
            timeline.say(
                f"window {index} ({state}): served by v{version}, accuracy {accuracy:.3f}; "
                f"monitor: {outcome['summary']}"
            )
            if outcome["alert"]:
                timeline.alerts.append(index)
            if outcome["job"]:
                timeline.retrain_windows.append(index)
                timeline.retrain_jobs.append(outcome["job"])
                timeline.say(f"retrain queued as job {outcome['job']}; waiting for the worker")
                job = _wait_job(settings, outcome["job"])
                model = job["registered_model"]
                made = f"{model['name']} v{model['version']}" if model else "nothing registered"
                timeline.say(f"job {job['id'][:8]} {job['status']}: {made}")
                champion = _champion(settings)
                if champion != version:
                    _wait_served(client, champion)
                    timeline.say(f"gate promoted v{champion}; the server now answers with it")
                else:
                    timeline.say("the gate kept the champion")
        timeline.final_champion = _champion(settings)
        _compare(settings, timeline, rows, seed)
    finally:
        for process in services:
            process.terminate()
        for process in services:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return timeline


def _write_spec(home: Path, train: Path) -> Path:
    spec = json5.loads((HERE / "spec.json").read_text())
    spec["pipeline"][0]["MLSteps"][0]["load_data_from_file"]["path"] = str(train)
    path = home / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def _write_policy(home: Path, fresh: Path) -> Path:
    import yaml

    policy = yaml.safe_load((HERE / "policy.yaml").read_text())
    policy[MODEL]["fresh_data"] = str(fresh)
    path = home / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(home)
    return env


def _loopml_command() -> list[str]:
    return [sys.executable, "-m", "loopml"]


def _loopml(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [*_loopml_command(), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"loopml {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    log = (Path(env["LOOPML_HOME"]) / f"{args[0]}.log").open("wb")
    return subprocess.Popen(
        [*_loopml_command(), *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(client: httpx.Client, services: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for process in services:
            if process.poll() is not None:
                raise SystemExit(f"{process.args} exited with {process.returncode}")
        try:
            if client.get("/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("the model server did not become ready in 120 s")


def _serve_window(client: httpx.Client, frame: pd.DataFrame) -> tuple[str, float]:
    """Send a window to /predict in requests of 50 rows, then its labels to /feedback."""
    features = frame.drop(columns=[TARGET])
    correct, versions = 0, set()
    for start in range(0, len(frame), 50):
        records = features.iloc[start : start + 50].to_dict(orient="records")
        answer = client.post("/predict", json=records)
        answer.raise_for_status()
        body = answer.json()
        versions.add(body["model"]["version"])
        labels = frame[TARGET].iloc[start : start + 50].tolist()
        feedback = [
            {"prediction_id": p["id"], "label": label}
            for p, label in zip(body["predictions"], labels, strict=True)
        ]
        client.post("/feedback", json=feedback).raise_for_status()
        correct += sum(
            int(p["prediction"]) == label
            for p, label in zip(body["predictions"], labels, strict=True)
        )
    return "/".join(sorted(versions)), correct / len(frame)


def _wait_logged(settings: Any, expected: int) -> None:
    """The server logs off the request path; wait until the window is in the store."""
    from loopml.store.predictions import PredictionLog

    log = PredictionLog.open(settings.database)
    deadline = time.monotonic() + 60
    while log.count(model_name=MODEL) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"the prediction log did not reach {expected} rows in 60 s")
        time.sleep(0.2)


def _monitor(settings: Any, policy_path: Path, rows: int) -> dict[str, Any]:
    from loopml.monitoring import WindowSpec, load_policies, policy_for
    from loopml.monitoring.service import PassOptions, monitor_pass

    options = PassOptions(
        window=WindowSpec(rows=rows), policy=policy_for(MODEL, load_policies(policy_path))
    )
    done = monitor_pass(settings, MODEL, options)
    parts, job, alert = [], None, False
    for outcome in done.run.outcomes:
        result = outcome.result
        accuracy = result.performance.get("accuracy")
        parts.append(
            f"drift share {result.drift_share:.0%}"
            + (f" ({', '.join(result.drifted)})" if result.drifted else "")
            + (f", labelled accuracy {accuracy:.3f}" if accuracy is not None else "")
            + (f"; {outcome.action}" if outcome.action else "; ok")
        )
        alert = alert or bool(outcome.findings)
        if outcome.action.startswith("retrain requested") and ", job " in outcome.action:
            job = outcome.action.split(", job ")[1].rstrip(")")
    return {"summary": " | ".join(parts) or "no complete window", "job": job, "alert": alert}


def _wait_job(settings: Any, job_id: str) -> dict[str, Any]:
    from loopml.store.jobs import JobStore

    jobs = JobStore(settings.database)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job.finished:
            if job.status != "succeeded":
                raise SystemExit(f"retrain job {job_id} ended {job.status}: {job.error}")
            return job.as_dict()
        time.sleep(0.5)
    raise SystemExit(f"retrain job {job_id} did not finish in 300 s")


def _wait_served(client: httpx.Client, version: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if client.get("/metadata").json()["model"]["version"] == version:
            return
        time.sleep(0.2)
    raise SystemExit(f"the server did not swap to version {version} in 120 s")


def _champion(settings: Any) -> str:
    from loopml.registry.models import CHAMPION, version_for_alias

    version = version_for_alias(settings, MODEL, CHAMPION)
    if version is None:
        raise SystemExit(f"{MODEL} has no champion")
    return version


def _compare(settings: Any, timeline: Timeline, rows: int, seed: int) -> None:
    """Both champions on the same unseen post-drift rows."""
    from loopml.registry.tracking import use_tracking

    mlflow = use_tracking(settings)
    after = make_rows(rows * 2, drifted=True, seed=seed + 999)
    features, labels = after.drop(columns=[TARGET]), after[TARGET].to_numpy()
    for version, slot in (
        (timeline.first_champion, "old_champion_accuracy"),
        (timeline.final_champion, "new_champion_accuracy"),
    ):
        predicted = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}").predict(features)
        setattr(timeline, slot, float((predicted.astype(int) == labels).mean()))
    timeline.say(
        f"on unseen post-drift data: first champion v{timeline.first_champion} "
        f"{timeline.old_champion_accuracy:.3f}, champion now v{timeline.final_champion} "
        f"{timeline.new_champion_accuracy:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="continuous training, end to end")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--drift-at", type=int, default=4)
    parser.add_argument("--home", type=Path, default=None, help="default: a temp folder")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="loopml-ct-"))
    timeline = run_demo(home, windows=args.windows, rows=args.rows, drift_at=args.drift_at)
    print(f"\nstate kept in {home} (LOOPML_HOME)")
    if not timeline.retrain_windows:
        raise SystemExit("no retrain happened")


if __name__ == "__main__":
    main()
