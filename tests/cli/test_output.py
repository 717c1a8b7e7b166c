"""What a person and a script see: every listing piped to a file keeps whole values, JSON parses.

The commands run as the installed ``loopml`` does, as subprocesses with stdout
and stderr going to files and no ``COLUMNS`` (Rich's 80-column fallback is
what cut names to ``wind…`` in CI logs). One small training run is shared.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import json5
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import get_settings
from tests.conftest import FIXTURES

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
from make_creditcard import make_creditcard, write_zip

MODEL = "credit_card_fraud_detection_with_a_model_name_longer_than_any_terminal_column"
FEATURE = "mean_radius_worst_value"
# what a library prints to its developers: none of it may reach a user's stderr without -v
CHATTER = re.compile(
    r"warning|Successfully registered|Created version|Downloading artifacts|pickle", re.I
)
QUIET_VARIABLES = ("COLUMNS", "LINES", "MLFLOW_LOGGING_LEVEL", "PYTHONWARNINGS")


@dataclass
class Home:
    folder: Path
    env: dict[str, str]
    spec: Path
    data: Path

    def loopml(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        """Run ``loopml ARGS`` with stdout and stderr redirected to files, as `> out 2> err`."""
        name = re.sub(r"\W+", "_", "_".join(args))[:60]
        out, err = self.folder / f"{name}.out", self.folder / f"{name}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            code = subprocess.run(
                [sys.executable, "-m", "loopml", *args],
                stdout=stdout,
                stderr=stderr,
                env=self.env,
                cwd=self.folder,
                check=False,
            ).returncode
        text, errors = out.read_text(), err.read_text()
        if check:
            assert code == 0, f"loopml {' '.join(args)} exited {code}:\n{text}\n{errors}"
        return code, text, errors


def _environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in QUIET_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(folder / "home")
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The seed spec but for its data (small, a long feature name) and a register step."""
    folder = tmp_path_factory.mktemp("piped")
    frame = make_creditcard(1500, positive_rate=0.06, seed=8).rename(columns={"V1": FEATURE})
    data = write_zip(frame, folder / "data" / "creditcardfraud.zip")
    spec = json5.loads((FIXTURES / "seed_file_spec.json").read_text())
    steps = spec["pipeline"][0]["MLSteps"]
    steps[0]["load_data_from_file"]["path"] = "data/creditcardfraud.zip"
    steps.append({"register_model": {}})
    spec["experiment_config"]["model_name"] = MODEL
    path = folder / "seed.json"
    path.write_text(json.dumps(spec))
    return Home(folder, _environment(folder), path, data)


@pytest.fixture(scope="module")
def trained(home: Home) -> tuple[str, str]:
    """``loopml run`` on the seed spec: its stdout and stderr."""
    _, out, err = home.loopml("run", str(home.spec))
    return out, err


def _no_chatter(stderr: str) -> None:
    """No library chatter; loopml's own warnings (an alert, say) are for the user and stay."""
    lines = [
        line
        for line in stderr.splitlines()
        if CHATTER.search(line) and not line.startswith("WARNING loopml.")
    ]
    assert not lines, "library chatter on stderr:\n" + "\n".join(lines)


def _whole(text: str, *values: str) -> None:
    assert "…" not in text, text
    for value in values:
        assert value in text, f"{value!r} is not whole in:\n{text}"


def test_run_is_quiet_without_v_and_keeps_whole_names(trained: tuple[str, str]) -> None:
    out, err = trained
    _no_chatter(err)
    assert err.strip() == "", err
    _whole(out, "Logistic Regression", "Decision Tree Classifier", MODEL, "Accuracy", "Kappa")
    # every row of a table is one line, so a script can grep it
    assert any("Decision Tree Classifier" in line and "│" in line for line in out.splitlines())
    assert f"registered {MODEL} version 1" in out


@pytest.mark.slow
def test_v_lets_the_libraries_speak(home: Home, trained: tuple[str, str]) -> None:
    _, _, err = home.loopml("-v", "run", str(home.spec))
    assert CHATTER.search(err), err
    assert "WARNING mlflow" in err or "ConvergenceWarning" in err, err


@pytest.mark.slow
def test_every_listing_piped_to_a_file_keeps_whole_values(
    home: Home, trained: tuple[str, str]
) -> None:
    _, runs, err = home.loopml("runs", "list")
    _whole(runs, MODEL, "succeeded", "3/3")
    run_id = re.search(r"\b[0-9a-f]{32}\b", runs)
    assert run_id is not None
    _, shown, _ = home.loopml("runs", "show", run_id.group(0))
    _whole(shown, MODEL, "load_data_from_file", "register_model", str(home.spec))
    _, models, _ = home.loopml("models", "list")
    _whole(models, MODEL)
    _, versions, _ = home.loopml("models", "list", MODEL)
    _whole(versions, "champion", "challenger", "Kappa", run_id.group(0))
    _, history, _ = home.loopml("models", "history", MODEL)
    _whole(history, "champion", "challenger")

    scored = home.folder / "scored.csv"
    rows = home.folder / "rows.csv"
    frame = make_creditcard(600, positive_rate=0.06, seed=3).rename(columns={"V1": FEATURE})
    frame[FEATURE] = frame[FEATURE] + 6 * np.std(frame[FEATURE])  # the world moved
    frame.drop(columns=["Class"]).to_csv(rows, index=False)
    _, batch, err = home.loopml(
        "predict-batch", "--model", f"{MODEL}@champion", "--input", str(rows),
        "--output", str(scored),
    )  # fmt: skip
    _no_chatter(err)
    _whole(batch, f"600 rows with {MODEL} version 1", str(scored))

    report = home.folder / "report.html"
    _, monitored, err = home.loopml(
        "monitor", MODEL, "--window", "300", "--no-retrain", "--report", str(report)
    )
    _no_chatter(err)
    _whole(monitored, FEATURE, "decay judged by kappa", str(report))
    drifted = [line for line in monitored.splitlines() if FEATURE in line]
    assert drifted and all("│" in line for line in drifted)

    _, submitted, _ = home.loopml("submit", str(home.spec))
    job_id = re.search(r"job ([0-9a-f]{32})", submitted)
    assert job_id is not None
    assert f"`loopml jobs show {job_id.group(1)}`" in submitted  # the hint is never wrapped
    _, jobs, _ = home.loopml("jobs", "list")
    _whole(jobs, job_id.group(1), MODEL, "queued")
    _, job, _ = home.loopml("jobs", "show", job_id.group(1))
    _whole(job, job_id.group(1), MODEL, str(home.spec))


@pytest.fixture
def in_process(home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("LOOPML_HOME", home.env["LOOPML_HOME"])
    for name in ("LOOPML_TRACKING_URI", "LOOPML_DATABASE_URL", "LOOPML_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _json(runner: CliRunner, *args: str) -> object:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_output_json_parses_and_has_the_documented_keys(
    home: Home, trained: tuple[str, str], in_process: CliRunner
) -> None:
    runs = _json(in_process, "runs", "list", "-o", "json")
    assert isinstance(runs, list) and runs
    assert set(runs[0]) >= {"run_id", "status", "model", "experiment", "started_at", "duration_s"}
    run_id = runs[-1]["run_id"]
    shown = _json(in_process, "runs", "show", run_id, "--output", "json")
    assert isinstance(shown, dict) and shown["run_id"] == run_id and shown["model"] == MODEL
    assert [step["step"] for step in shown["steps"]][:3] == [
        "load_data_from_file", "train_model", "register_model",
    ]  # fmt: skip
    assert {"values", "spec_hash", "mlflow_run_id", "error"} <= set(shown)
    models = _json(in_process, "models", "list", "-o", "json")
    assert isinstance(models, list)
    (mine,) = [m for m in models if m["model"] == MODEL]
    assert mine["champion"] == "1" and mine["aliases"]["champion"] == "1"
    versions = _json(in_process, "models", "list", MODEL, "-o", "json")
    assert isinstance(versions, list)
    assert {"version", "aliases", "main_metric", "main_metric_value", "run_id"} <= set(versions[0])
    assert versions[-1]["main_metric"] == "Kappa"
    history = _json(in_process, "models", "history", MODEL, "-o", "json")
    assert isinstance(history, dict) and history["model"] == MODEL
    assert {"moved_at", "alias", "from_version", "to_version", "actor", "reason"} <= set(
        history["moves"][0]
    )
    jobs = _json(in_process, "jobs", "list", "-o", "json")
    assert isinstance(jobs, list)
    for job in jobs:
        assert {"job_id", "kind", "status", "model", "submitted_at"} <= set(job)
    if jobs:
        job = _json(in_process, "jobs", "show", jobs[0]["job_id"], "-o", "json")
        assert isinstance(job, dict)
        assert {"gate", "run_id", "registered_model", "error", "details"} <= set(job)
    rows = home.folder / "rows_json.csv"
    frame = make_creditcard(50, positive_rate=0.06, seed=4).rename(columns={"V1": FEATURE})
    frame.drop(columns=["Class"]).to_csv(rows, index=False)
    batch = _json(
        in_process, "predict-batch", "--model", f"{MODEL}/1", "--input", str(rows),
        "--output", str(home.folder / "scored_json.csv"), "-o", "json",
    )  # fmt: skip
    assert isinstance(batch, dict)
    assert {k: batch[k] for k in ("model", "version", "rows", "input", "output", "engine")} == {
        "model": MODEL,
        "version": "1",
        "rows": 50,
        "input": str(rows),
        "output": str(home.folder / "scored_json.csv"),
        "engine": "local",
    }
    assert batch["batch_id"] == batch["job_id"] and batch["chunks"] == 1
    assert batch["rows_per_second"] > 0 and "batch-log" in batch["log"]
    monitored = _json(in_process, "monitor", MODEL, "--all", "--no-retrain", "-o", "json")
    assert isinstance(monitored, dict) and monitored["metric"] == "kappa"
    window = monitored["windows"][0]
    assert {"window", "rows", "drifted", "drift_share", "performance", "findings", "action"} <= set(
        window
    )


def test_run_json_is_one_document_on_stdout(tmp_path: Path, in_process: CliRunner) -> None:
    (tmp_path / "data.csv").write_text("a,b,Class\n1,2,0\n3,4,1\n5,6,0\n")
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "pipeline": [{"MLSteps": [{"load_data_from_file": {"path": "data.csv"}}]}],
                "experiment_config": {
                    "experiment_name": "json-run",
                    "model_name": "m",
                    "main_metric": "F1",
                    "problem_type": "classification",
                    "target": "Class",
                },
            }
        )
    )
    result = _json(in_process, "run", str(spec), "-o", "json")
    assert isinstance(result, dict)
    assert result["run"]["status"] == "succeeded" and result["registered_model"] is None
    assert set(result) == {"run", "registered_model", "reports"}


def test_finding_nothing_says_where_it_looked(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    empty = Home(tmp_path, env, tmp_path / "none.json", tmp_path / "none.csv")
    home_path = str((tmp_path / "home").resolve())
    for args in (("runs", "list"), ("jobs", "list"), ("models", "list")):
        _, out, _ = empty.loopml(*args)
        assert home_path in out and "tracking URI" in out, out
        _, listed, hint = empty.loopml(*args, "-o", "json")
        assert json.loads(listed) == [] and home_path in hint


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_predict_batch_names_missing_and_mistyped_columns(
    home: Home, trained: tuple[str, str]
) -> None:
    frame = make_creditcard(20, positive_rate=0.1, seed=5).rename(columns={"V1": FEATURE})
    missing = home.folder / "missing.csv"
    frame.drop(columns=["Class", FEATURE, "V7"]).to_csv(missing, index=False)
    code, out, err = home.loopml(
        "predict-batch", "--model", f"{MODEL}/1", "--input", str(missing),
        "--output", str(home.folder / "never.csv"), check=False,
    )  # fmt: skip
    assert code == 2, (out, err)
    line = _one_line(err)
    assert f"missing column(s) {FEATURE}, V7" in line and str(missing) in line, line
    assert "Traceback" not in err and not (home.folder / "never.csv").exists()

    mistyped = home.folder / "mistyped.csv"
    wrong = frame.drop(columns=["Class"]).astype({"V3": object})
    wrong.loc[4, "V3"] = "twelve"
    wrong.to_csv(mistyped, index=False)
    code, out, err = home.loopml(
        "predict-batch", "--model", f"{MODEL}@champion", "--input", str(mistyped),
        "--output", str(home.folder / "never.csv"), check=False,
    )  # fmt: skip
    assert code == 2, (out, err)
    assert "V3 (double, got 'twelve')" in _one_line(err)


def test_a_missing_data_file_is_a_spec_issue_for_validate_and_submit(home: Home) -> None:
    document = json.loads(home.spec.read_text())
    document["pipeline"][0]["MLSteps"][0]["load_data_from_file"]["path"] = "data/gone.zip"
    spec = home.folder / "gone.json"
    spec.write_text(json.dumps(document))
    expected = str(home.folder / "data" / "gone.zip")
    for command in ("validate", "submit"):
        code, out, err = home.loopml(command, str(spec), check=False)
        assert code == 2, (out, err)
        assert "pipeline[0].MLSteps[0].load_data_from_file.path" in err
        assert f"no such file '{expected}'" in err
    _, jobs, _ = home.loopml("jobs", "list", "-o", "json")
    assert all(job["model"] != "gone" for job in json.loads(jobs))


@pytest.mark.slow
def test_date_text_becomes_date_features_or_is_refused(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    runner = Home(tmp_path, env, tmp_path / "dates.json", tmp_path / "dates.csv")
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2, 10, 120),
            "opened": days.strftime("%Y-%m-%d"),
            "Class": (np.arange(120) % 3 == 0).astype(int),
        }
    )
    frame.to_csv(runner.data, index=False)
    spec = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": "dates.csv"}},
                    {"train_model": {"modeling_params": {"estimator_list": ["dt"], "fold": 2}}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "dates",
            "model_name": "dates",
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    runner.spec.write_text(json.dumps(spec))
    from loopml.automl.config import FeatureEngineeringParams
    from loopml.automl.preprocess import plan_columns

    plan = plan_columns(frame.drop(columns=["Class"]), FeatureEngineeringParams())
    assert plan.dates == ["opened"] and "opened" not in plan.categorical
    frame["opened"] = days.strftime("%d/%m/%Y")  # 13/01/2024: not ISO, and not guessable
    frame.to_csv(runner.data, index=False)
    code, out, err = runner.loopml("run", str(runner.spec), check=False)
    assert code == 1, (out, err)
    line = _one_line(err)
    assert re.search(
        r"column 'opened' holds dates that are not ISO 8601 \(e\.g\. '\d\d/\d\d/2024'\)", line
    )
    assert "YYYY-MM-DD" in line and "Traceback" not in err


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_says_serving_only_when_it_answers(home: Home, trained: tuple[str, str]) -> None:
    import time

    import httpx

    port = _free_port()
    err_file = home.folder / "serve.err"
    with err_file.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "loopml", "serve", "--model", MODEL, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=home.env,
        )
    try:
        deadline = time.monotonic() + 300
        while "serving" not in err_file.read_text():
            assert server.poll() is None, err_file.read_text()
            assert time.monotonic() < deadline, err_file.read_text()
            time.sleep(0.1)
        # the moment it says so, it answers, with the model loaded
        assert httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200
        metadata = httpx.get(f"http://127.0.0.1:{port}/metadata").json()
        assert MODEL in json.dumps(metadata)
        lines = err_file.read_text().splitlines()
        assert lines[0] == f"loading {MODEL} ..."
        assert lines[-1] == f"serving {MODEL} on http://127.0.0.1:{port} (1 worker(s))"
        _no_chatter(err_file.read_text())
        # a second server on the same port is refused before it loads anything
        code, _, err = home.loopml("serve", "--model", MODEL, "--port", str(port), check=False)
        assert code == 2 and f"--port {port}: cannot listen on 127.0.0.1:{port}" in err, err
        assert "loading" not in err and "serving" not in err
    finally:
        server.terminate()
        server.wait(timeout=60)
