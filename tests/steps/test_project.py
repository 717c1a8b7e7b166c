"""run_mlflow_project: what a spec check refuses (with the parameter's path), what a failing
project reports, and that its split is train_model's (the gate compares on the same rows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loopml.core.access import DataPolicy
from loopml.core.errors import DataError, SpecError
from loopml.core.settings import Settings
from loopml.engine import check_spec_text
from loopml.steps.registry import StepRegistry
from loopml.testing import small_context, small_frame

TINY_PROJECT = Path(__file__).parents[1] / "fixtures" / "tiny_project"
STEP_PATH = "pipeline[0].MLSteps[1].run_mlflow_project"


def _spec(project: dict[str, Any]) -> str:
    return json.dumps(
        {
            "pipeline": [
                {
                    "MLSteps": [
                        {"load_data_from_file": {"path": "data.csv"}},
                        {"run_mlflow_project": project},
                        {"validate_model": {}},
                    ]
                }
            ],
            "experiment_config": {
                "experiment_name": "p",
                "model_name": "p",
                "main_metric": "F1",
                "problem_type": "classification",
                "target": "target",
            },
        }
    )


def _issues(project: dict[str, Any], folder: Path, **kwargs: Any) -> list[tuple[str, str]]:
    small_frame().to_csv(folder / "data.csv", index=False)
    with pytest.raises(SpecError) as caught:
        check_spec_text(
            _spec(project), StepRegistry.with_builtins(), source=folder / "spec.json", **kwargs
        )
    return [(issue.path, issue.message) for issue in caught.value.issues]


def test_a_good_project_passes_the_spec_check(tmp_path: Path) -> None:
    small_frame().to_csv(tmp_path / "data.csv", index=False)
    checked = check_spec_text(
        _spec({"uri": str(TINY_PROJECT), "parameters": {"fail": 0}}),
        StepRegistry.with_builtins(),
        source=tmp_path / "spec.json",
    )
    assert checked.step_names == ("load_data_from_file", "run_mlflow_project", "validate_model")


@pytest.mark.parametrize(
    ("project", "field", "words"),
    [
        ({"uri": "nowhere"}, "uri", "no project folder at"),
        ({"uri": "."}, "uri", "has no MLproject file"),
        ({"uri": str(TINY_PROJECT), "entry_point": "mian"}, "entry_point", "did you mean 'main'"),
        ({"uri": str(TINY_PROJECT), "parameters": {"epochs": 3}}, "parameters", "epochs is not"),
    ],
)
def test_a_bad_project_is_a_spec_error_at_its_parameter(
    project: dict[str, Any], field: str, words: str, tmp_path: Path
) -> None:
    ((path, message),) = _issues(project, tmp_path)
    assert path == f"{STEP_PATH}.{field}"
    assert words in message


def test_the_data_parameters_are_the_steps_own(tmp_path: Path) -> None:
    issues = _issues({"uri": str(TINY_PROJECT), "parameters": {"train_path": "x"}}, tmp_path)
    assert issues[0][0].startswith(f"{STEP_PATH}.parameters")
    assert "set by the step" in issues[0][1]


def test_a_project_declaring_no_data_parameters_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: p\nentry_points:\n  main:\n    command: python -c 'print(1)'\n"
    )
    ((path, message),) = _issues({"uri": "p"}, tmp_path)
    assert path == f"{STEP_PATH}.entry_point"
    assert "does not declare train_path, holdout_path" in message


def test_specs_from_http_may_not_run_a_project(tmp_path: Path) -> None:
    issues = _issues(
        {"uri": str(TINY_PROJECT)},
        tmp_path,
        peek_data=False,
        policy=DataPolicy(restricted=True),
    )
    assert any(
        path == STEP_PATH and "runs the project's own code" in message for path, message in issues
    )


def test_the_split_is_train_models_split(tmp_path: Path) -> None:
    """Same train_size and session_id: the same holdout rows as AutoML's (one gate, same rows)."""
    from loopml.automl.config import TrainParams
    from loopml.automl.data import split_data
    from loopml.steps.project import ProjectParams, split

    frame = small_frame(rows=80).reset_index(names="row")
    params = TrainParams.model_validate(
        {"modeling_params": {"session_id": 4, "train_size": 0.6, "fold": 2}},
        context={"problem_type": "classification"},
    )
    automl = split_data(frame, "target", "classification", params)
    train, holdout, classes = split(
        frame,
        "target",
        "classification",
        ProjectParams(uri="x", session_id=4, train_size=0.6),
    )
    assert classes == [0, 1]
    assert np.array_equal(holdout["row"].to_numpy(), automl.X_holdout["row"].to_numpy())
    assert sorted(train["row"]) == sorted(automl.X_train["row"])


@pytest.mark.slow
def test_a_failing_project_is_a_step_error_with_its_last_lines(
    tmp_path: Path, tracking_uri: str
) -> None:
    from loopml.registry.tracking import use_tracking
    from loopml.steps.project import LOG_TAIL_LINES, ProjectError

    settings = Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{tmp_path / 'loopml.db'}",
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    context = small_context(settings)
    step = StepRegistry.with_builtins(plugins=False).get("run_mlflow_project")
    with pytest.raises(ProjectError) as caught:
        raw = {"uri": str(TINY_PROJECT), "parameters": {"fail": 1}}
        step(context, step.parse(raw, context.experiment))
    message = str(caught.value)
    assert "exited with code" in message  # mlflow run's code: 1 when the project failed
    assert "giving up on purpose" in message  # stderr too
    assert "tiny project line 39" in message
    assert "tiny project line 0\n" not in message  # only the tail
    assert message.count("\n  | ") == LOG_TAIL_LINES
    assert "best" not in context.models and context.trained is None
    client = use_tracking(settings).MlflowClient()
    (run,) = client.search_runs(
        [client.get_experiment_by_name("loopml-step-conformance").experiment_id],
        filter_string="params.fail = '1'",
    )
    assert run.info.status == "FAILED"
    assert run.data.tags["loopml.kind"] == "mlflow_project"
    assert run.data.params["target"] == "target" and run.data.params["train_path"].endswith(".csv")


@pytest.mark.slow
def test_a_project_past_its_timeout_is_killed_with_everything_it_started(
    tmp_path: Path, tracking_uri: str
) -> None:
    import time

    from loopml.steps.project import ProjectError

    settings = Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{tmp_path / 'loopml.db'}",
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    context = small_context(settings)
    step = StepRegistry.with_builtins(plugins=False).get("run_mlflow_project")
    pid_file = tmp_path / "project.pid"
    raw = {
        "uri": str(TINY_PROJECT),
        "entry_point": "hang",
        "parameters": {"pid_file": str(pid_file)},
        "timeout_minutes": 0.75,
    }
    with pytest.raises(ProjectError) as caught:
        step(context, step.parse(raw, context.experiment))
    assert "did not finish within 0.75 minutes" in str(caught.value)
    assert "hanging" in str(caught.value)  # it got as far as its own code
    pid = int(pid_file.read_text())

    def gone() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        return state == "Z"  # killed, not yet reaped by init

    deadline = time.monotonic() + 30
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(), f"the project's process {pid} outlived the step"


GIT_URI = "https://nobody:s3cret@loopml-test.invalid/project.git"


@pytest.mark.parametrize(
    ("project", "field", "words"),
    [
        ({"uri": "file:///nowhere/at/all"}, "uri", "no project folder at /nowhere/at/all"),
        ({"uri": "file://{folder}"}, "uri", "has no MLproject file"),
        ({"uri": "-p"}, "uri", "not starting with -"),
        ({"uri": GIT_URI, "parameters": {"x; touch m": 1}}, "parameters", "not identifiers"),
        ({"uri": GIT_URI, "parameters": {"note": "a\x00b"}}, "parameters", "NUL"),
        ({"uri": GIT_URI, "entry_point": "main.sh; touch m"}, "entry_point", "is not a name"),
        ({"uri": GIT_URI, "version": "--upload-pack=touch m"}, "version", "is not a name"),
    ],
)
def test_hostile_project_fields_are_spec_errors(
    project: dict[str, Any], field: str, words: str, tmp_path: Path
) -> None:
    project = {
        key: str(v).format(folder=tmp_path) if key == "uri" else v for key, v in project.items()
    }
    issues = _issues(project, tmp_path)
    assert any(
        path.startswith(f"{STEP_PATH}.{field}") and words in message for path, message in issues
    ), issues


def _context(tmp_path: Path, tracking_uri: str) -> Any:
    settings = Settings(
        home=tmp_path / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{tmp_path / 'loopml.db'}",
        artifact_root=(tmp_path / "artifacts").as_uri(),
    )
    return small_context(settings)


def _run_step(context: Any, raw: dict[str, Any]) -> None:
    step = StepRegistry.with_builtins(plugins=False).get("run_mlflow_project")
    step(context, step.parse(raw, context.experiment))


def test_an_unreachable_git_project_fails_fast_naming_it_without_its_credentials(
    tmp_path: Path, tracking_uri: str
) -> None:
    """No network here: git's own reason, before ``mlflow run`` (and its traceback) starts."""
    from loopml.steps.project import ProjectSpecError

    context = _context(tmp_path, tracking_uri)
    with pytest.raises(ProjectSpecError) as caught:
        _run_step(context, {"uri": GIT_URI})
    message = str(caught.value)
    assert message.startswith("the git repository https://***@loopml-test.invalid/project.git")
    assert "cannot be reached (fatal:" in message and "Traceback" not in message
    assert "s3cret" not in message
    assert context.trained is None


def test_a_git_server_that_never_answers_is_given_up_on(tmp_path: Path) -> None:
    """A host that accepts the connection and says nothing: refused after the reach timeout."""
    import socket
    import time

    from loopml.steps.project import ProjectSpecError, reach

    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with pytest.raises(ProjectSpecError) as caught:
            reach(f"http://127.0.0.1:{port}/project.git", None, timeout=2)
        assert "did not answer within 2 s" in str(caught.value)
        # git's HTTP helper went with it (left alone, it would wait out its 30 s stall limit)
        deadline = time.monotonic() + 10
        while _processes_naming(f"127.0.0.1:{port}/") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes_naming(f"127.0.0.1:{port}/")


def _processes_naming(text: str) -> list[str]:
    """Live (not zombie) processes whose command line holds ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


@pytest.mark.slow
def test_shell_text_in_parameters_reaches_the_project_as_one_argument_and_runs_nothing(
    tmp_path: Path, tracking_uri: str
) -> None:
    """MLflow shell-quotes each value: a value that would run commands arrives verbatim.

    The project logs no model, so the step also shows what a missing ``model_path`` says.
    """
    project = tmp_path / "echo"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: echo\nentry_points:\n  main:\n    parameters:\n      train_path: path\n"
        "      holdout_path: path\n      target: string\n      out: string\n      note: string\n"
        "    command: python echo.py {out} {note}\n"
    )
    (project / "echo.py").write_text(
        "import pathlib, sys\npathlib.Path(sys.argv[1]).write_text(repr(sys.argv[2:]))\n"
    )
    marker = tmp_path / "injected"
    note = (
        f"x; touch {marker}1 $(touch {marker}2) `touch {marker}3`\ntouch {marker}4 "
        f"' ; touch {marker}5 \" && touch {marker}6 | touch {marker}7"
    )
    out = tmp_path / "received"
    context = _context(tmp_path, tracking_uri)
    with pytest.raises(DataError) as caught:
        _run_step(context, {"uri": str(project), "parameters": {"out": str(out), "note": note}})
    assert out.read_text() == repr([note])  # one argument, exactly as given
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("injected")) == []
    assert "the project logged no model named 'model' (it logged: none)" in str(caught.value)
    assert context.trained is None
