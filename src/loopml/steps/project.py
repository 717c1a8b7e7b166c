"""The ``run_mlflow_project`` step: a model trained by an MLflow Project enters loopml's loop.

The project (a local folder with an ``MLproject`` file, or a git URL) runs with ``mlflow run``
as a nested child of the pipeline's MLflow run, against loopml's tracking store. The data
contract, the same for every project:

- the engine splits the loaded ``train`` frame once (stratified for classification,
  ``train_size`` and ``session_id`` as in ``train_model``) and writes both parts as CSV files
  with the feature columns and the target column;
- the entry point gets three parameters on top of ``parameters``: ``train_path`` and
  ``holdout_path`` (those files) and ``target`` (the target column's name); it must declare
  ``train_path`` and ``holdout_path``;
- the project logs one model (``mlflow.<flavor>.log_model(name=model_path)``) taking the feature
  columns, with a column-based signature. A classifier returns, per row, the index of the
  predicted class among the sorted class labels, then one probability per class
  (:mod:`loopml.registry.project_model`); a regressor returns the value.

That model becomes the pipeline's candidate (``models/best``, ``trained``) and the holdout
the gate's frame (``data/holdout``), so ``evaluate_model``, ``validate_model`` (champion and
challenger on the same holdout), ``register_model``, serving, batch scoring, the prediction
log and monitoring take it as they take an AutoML model. The step adds the reference profile
(``validate_data``'s when it ran, else one built from the training split it handed over) and
the output contract to the model's artifacts before anything registers them.

Why ``mlflow run`` in a child process rather than ``mlflow.projects.run`` in this one: the
project's output is captured (its last lines are the step's error when it fails, the whole
log an artifact of the child run), a timeout can stop it, and the project's imports (torch)
never enter the pipeline's process. ``mlflow run`` is ``mlflow.projects.run``.

A project runs its own code, so specs submitted over HTTP (or with ``LOOPML_RESTRICT_DATA``)
may not use this step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from loopml.core.access import DataPolicy
from loopml.core.context import StepContext, TrainedModel
from loopml.core.errors import AccessError, DataError, LoopmlError
from loopml.steps.base import StepParams, step

CONTRACT_PARAMETERS = ("train_path", "holdout_path", "target")
"""Parameters the step passes to every project; a spec may not set them itself."""

PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
REACH_TIMEOUT_S = 60.0
"""How long ``git ls-remote`` may take to show a git URI is reachable before the project runs."""

LOG_TAIL_LINES = 30


class ProjectError(LoopmlError):
    """The project ran and failed (or timed out); the message ends with its last log lines."""


class ProjectSpecError(DataError):
    """A parameter that names a project or entry point that is not there; ``field`` says which."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class ProjectParams(StepParams):
    """Which project, which entry point, with what; how the data is split for it."""

    uri: str = Field(
        description="A local folder with an MLproject file (relative to the spec) or a git URL."
    )
    entry_point: str = Field(default="main", description="Entry point of the MLproject.")
    parameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Entry point parameters; train_path, holdout_path and target are the step's.",
    )
    env_manager: Literal["local", "virtualenv", "uv"] = Field(
        default="local",
        description="local: this environment (pip install 'loopml[torch]' for the example).",
    )
    version: str | None = Field(default=None, description="Git commit or branch of a git URI.")
    model_path: str = Field(
        default="model", description="Name the project logs its model under (log_model name)."
    )
    train_size: float = Field(0.7, gt=0, lt=1, description="Share of rows for training.")
    session_id: int | None = Field(None, description="Seed of the train/holdout split.")
    timeout_minutes: float = Field(60.0, gt=0, description="Stop the project after this long.")

    @field_validator("parameters")
    @classmethod
    def _not_contract(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        # MLflow shell-quotes values but appends undeclared names to the command as they
        # are (`--NAME VALUE`): a name is an identifier, nothing a shell reads
        odd = sorted(repr(name) for name in value if not PARAMETER_NAME.fullmatch(name))
        if odd:
            raise ValueError(
                f"parameter names {', '.join(odd)} are not identifiers; use letters, digits, "
                "_ . - (starting with a letter or _)"
            )
        nul = sorted(name for name, item in value.items() if "\x00" in str(item))
        if nul:
            raise ValueError(f"{', '.join(nul)}: a value may not hold a NUL character")
        taken = sorted(set(value) & set(CONTRACT_PARAMETERS))
        if taken:
            raise ValueError(
                f"{', '.join(taken)} {'is' if len(taken) == 1 else 'are'} set by the step "
                f"(the data it hands the project); remove {'it' if len(taken) == 1 else 'them'}"
            )
        return value

    @field_validator("entry_point", "version")
    @classmethod
    def _a_name(cls, value: str | None) -> str | None:
        """An entry point or git ref is a name: never an option (``-...``) or shell text."""
        if value is not None and not REF.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a name: use letters, digits, _ . / - (not starting with - or /)"
            )
        return value

    @field_validator("uri")
    @classmethod
    def _a_location(cls, value: str) -> str:
        if not value.strip() or value.startswith("-") or any(c in value for c in "\x00\n\r"):
            raise ValueError(
                "must be a project folder (path or file:// URI) or a git URL, on one line, "
                "not starting with -"
            )
        return value


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names a git repository rather than a local folder (or a file:// one)."""
    if uri.startswith("file://"):
        return False
    return "://" in uri or uri.startswith("git@") or uri.endswith(".git")


def local_path(uri: str) -> Path:
    """The folder a local ``uri`` names (a path, or a file:// URI as MLflow reads it)."""
    from urllib.parse import unquote, urlparse

    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


def shown(uri: str) -> str:
    """``uri`` fit for a message or a tag: credentials in a URL (``user:token@``) are hidden."""
    import re

    return re.sub(r"(://)[^/@\s]+@", r"\1***@", uri)


def check_project(params: ProjectParams, base_dir: Path | None, policy: DataPolicy) -> None:
    """Refuse the step over HTTP; check a local project's MLproject and entry point.

    Runs when the spec is validated, so a missing MLproject or an unknown entry point is a
    spec error naming the step, before any data is loaded.
    """
    if policy.restricted:
        raise AccessError(
            "run_mlflow_project runs the project's own code, which specs submitted over HTTP "
            "(or with LOOPML_RESTRICT_DATA) may not do; run it with `loopml run` or "
            "`loopml submit` from a trusted machine"
        )
    if is_remote(params.uri):
        return  # fetched when the step runs; validation contacts no network
    folder = local_path(params.uri)
    if not folder.is_absolute():
        if base_dir is None:
            return
        folder = (base_dir / folder).resolve()
    describe_entry_point(folder, params)


def describe_entry_point(folder: Path, params: ProjectParams) -> list[str]:
    """The entry point's declared parameter names, or a ProjectSpecError saying what is wrong."""
    from loopml.core.suggest import closest

    if not folder.is_dir():
        raise ProjectSpecError("uri", f"no project folder at {folder}")
    if not (folder / "MLproject").is_file():
        raise ProjectSpecError(
            "uri",
            f"{folder} has no MLproject file; a project folder declares "
            "its entry points there (https://mlflow.org/docs/latest/projects.html)",
        )
    from mlflow.projects._project_spec import load_project

    try:
        project = load_project(str(folder))  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ProjectSpecError("uri", f"its MLproject cannot be read: {exc}") from exc
    known = sorted(project._entry_points)
    if params.entry_point not in known:
        hint = closest(params.entry_point, known)
        raise ProjectSpecError(
            "entry_point",
            f"{params.entry_point!r} is not in {folder / 'MLproject'}; it declares "
            f"{', '.join(known) or 'none'}" + (f" (did you mean {hint!r}?)" if hint else ""),
        )
    entry = project._entry_points[params.entry_point]
    declared = sorted(entry.parameters)
    missing = [name for name in ("train_path", "holdout_path") if name not in declared]
    if missing:
        raise ProjectSpecError(
            "entry_point",
            f"{params.entry_point!r} of {folder / 'MLproject'} does not declare "
            f"{', '.join(missing)}; run_mlflow_project hands the data over as train_path, "
            "holdout_path (CSV files) and target",
        )
    unknown = sorted(set(params.parameters) - set(declared))
    if unknown:
        raise ProjectSpecError(
            "parameters",
            f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not declared by "
            f"entry point {params.entry_point!r}; it declares {', '.join(declared)}",
        )
    required = [
        name
        for name, parameter in entry.parameters.items()
        if parameter.default is None and name not in (*CONTRACT_PARAMETERS, *params.parameters)
    ]
    if required:
        raise ProjectSpecError(
            "parameters",
            f"entry point {params.entry_point!r} needs {', '.join(sorted(required))}, which "
            "have no default; give them under parameters",
        )
    return declared


@step(
    "run_mlflow_project",
    params=ProjectParams,
    check_access=check_project,
    outputs=("data/holdout", "models/best", "trained"),
    inputs=("data/train",),
)
def run_mlflow_project(context: StepContext, params: ProjectParams) -> None:
    """Train with an MLflow Project on the engine's split; its model becomes the candidate."""
    from loopml.registry.tracking import use_tracking

    started = time.perf_counter()
    experiment = context.experiment
    # where the project is, checked before any data is split or run recorded
    if is_remote(params.uri):
        uri = params.uri
        if not uri.split("#", 1)[0].endswith(".zip"):  # MLflow downloads a zip URI itself
            reach(uri, params.version)
    else:
        uri = str(context.resolve_path(str(local_path(params.uri))))
        describe_entry_point(Path(uri), params)  # again: the spec check may not have seen it
        context.code_paths.append(Path(uri))  # the project's sources join the run's code hash
    frame = context.require_frame()
    if params.session_id is None and context.seed is not None:
        # the run's recorded seed, as train_model takes it, so `runs reproduce` splits alike
        params = params.model_copy(update={"session_id": context.seed})
    train, holdout, classes = split(frame, experiment.target, experiment.problem_type, params)
    mlflow = use_tracking(context.settings)
    client = mlflow.MlflowClient()
    parent = mlflow.active_run()
    experiment_id = (
        parent.info.experiment_id if parent is not None else _experiment_id(context, mlflow)
    )
    tags = {"loopml.kind": "mlflow_project", "loopml.project_uri": shown(params.uri)}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent.info.run_id
    child = client.create_run(
        experiment_id, tags=tags, run_name=f"project {Path(shown(params.uri).rstrip('/')).name}"
    )
    child_id = child.info.run_id

    with tempfile.TemporaryDirectory(prefix="loopml-project-") as folder:
        work = Path(folder)
        train_path, holdout_path = work / "train.csv", work / "holdout.csv"
        train.to_csv(train_path, index=False)
        holdout.to_csv(holdout_path, index=False)
        values = {
            **params.parameters,
            "train_path": str(train_path),
            "holdout_path": str(holdout_path),
            "target": experiment.target,
        }
        # as `mlflow run` does for a run it creates (it logs none for a run it is given)
        client.log_batch(
            child_id, params=[_param(key, value) for key, value in values.items()], synchronous=True
        )
        context.progress(f"running MLflow project {shown(params.uri)}", 0, None)
        _run_project(context, params, uri, values, experiment_id, child_id, work / "project.log")
        client.log_artifact(child_id, str(work / "project.log"), "project")

    model = _logged_model(client, experiment_id, child_id, params.model_path)
    profile = context.reports.get("reference_profile")
    if profile is None:
        from loopml.core.profile import build_profile

        profile = build_profile(train, experiment.target)
    _attach(client, model.model_id, profile, experiment.problem_type, classes)
    model_uri = f"models:/{model.model_id}"
    estimator = _load(mlflow, model_uri, experiment.problem_type, classes)

    from loopml.steps.evaluate import score_frame
    from loopml.steps.tracking import metric_key

    _, _, _, metrics = score_frame(estimator, holdout, experiment.target, experiment.problem_type)
    for name, value in metrics.items():
        if value == value:
            client.log_metric(child_id, f"holdout_{metric_key(name)}", float(value))
    client.set_tag(child_id, "loopml.best", "True")
    context.data["holdout"] = holdout
    context.models["best"] = estimator
    context.trained = TrainedModel(
        estimator=f"mlflow project {shown(params.uri)}:{params.entry_point}",
        model_uri=model_uri,
        mlflow_run_id=child_id,
        main_metric=experiment.main_metric,
        main_metric_value=float(metrics[experiment.main_metric]),
        seconds=round(time.perf_counter() - started, 3),
    )


def split(frame: Any, target: str, problem_type: str, params: ProjectParams) -> Any:
    """(training split, holdout, sorted class labels or None), as ``train_model`` splits."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data")
    if frame[target].isna().any():
        raise DataError(f"target column {target!r} has missing values; drop or fill those rows")
    classes = None
    stratify = None
    if problem_type == "classification":
        values = frame[target].to_numpy()
        classes, counts = np.unique(values, return_counts=True)
        if len(classes) < 2 or counts.min() < 2:
            found = dict(zip(classes.tolist(), counts.tolist(), strict=True))
            raise DataError(
                f"target column {target!r} needs at least two classes of two rows each for a "
                f"stratified holdout (found {found})"
            )
        stratify = values
    train, holdout = train_test_split(
        frame,
        train_size=params.train_size,
        random_state=params.session_id,
        stratify=stratify,
    )
    return (
        train.reset_index(drop=True),
        holdout.reset_index(drop=True),
        None if classes is None else classes.tolist(),
    )


def _param(key: str, value: Any) -> Any:
    from mlflow.entities import Param

    return Param(key, str(value))


def _experiment_id(context: StepContext, mlflow: Any) -> str:
    from loopml.registry.tracking import ensure_experiment

    return ensure_experiment(context.settings, context.experiment.experiment_name)


def _run_project(
    context: StepContext,
    params: ProjectParams,
    uri: str,
    values: dict[str, Any],
    experiment_id: str,
    run_id: str,
    log_path: Path,
) -> None:
    """``mlflow run`` in its own process group; its output to ``log_path``; errors with its tail."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        "--entry-point",
        params.entry_point,
        "--env-manager",
        params.env_manager,
        "--experiment-id",
        str(experiment_id),
        "--run-id",
        run_id,
    ]
    if params.version:
        command += ["--version", params.version]
    for key, value in values.items():
        command += ["-P", f"{key}={value}"]
    command += ["--", uri]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
    }
    env.update(GIT_ENV)
    env["MLFLOW_TRACKING_URI"] = context.settings.tracking
    # env_manager local runs the entry point's `python` from PATH: make it this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,  # nothing (git asking for a password) waits for input
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            cwd=str(context.base_dir) if context.base_dir.is_dir() else None,
            start_new_session=True,
        )
        reader = threading.Thread(target=_copy, args=(process, log, tail), daemon=True)
        reader.start()
        timed_out = False
        try:
            code = _wait(context, process, tail, params.timeout_minutes * 60)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(process)
            code = process.wait()
        except BaseException:  # interrupted or cancelled: leave no project running
            _stop(process)
            process.wait()
            raise
        reader.join(30)
    if timed_out or code != 0:
        _fail_run(context, run_id)
        why = (
            f"did not finish within {params.timeout_minutes:g} minutes"
            if timed_out
            else f"exited with code {code}"
        )
        lines = "\n".join(f"  | {line}" for line in tail) or "  | (no output)"
        raise ProjectError(
            f"MLflow project {shown(params.uri)} (entry point {params.entry_point!r}) {why}; "
            f"its last lines:\n{lines}"
        )


GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=20",
    "GIT_HTTP_LOW_SPEED_LIMIT": "1",
    "GIT_HTTP_LOW_SPEED_TIME": "30",
}
"""Git never prompts (no terminal, no askpass) and gives up on a connection that stalls."""


def reach(uri: str, version: str | None, timeout: float = REACH_TIMEOUT_S) -> None:
    """Fail fast, with git's reason, when the git repository ``uri`` cannot be reached.

    ``mlflow run`` would spend its start-up, then fail with a traceback (or wait on a
    password prompt, or a connection that never answers, until the step's timeout).
    """
    repository = uri.split("#", 1)[0]  # MLflow's URI#subdirectory
    what = f"the git repository {shown(repository)}"
    env = {**os.environ, **GIT_ENV}
    try:
        git = subprocess.Popen(
            ["git", "ls-remote", "--", repository, *([version] if version else ["HEAD"])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
            start_new_session=True,  # git's helpers (git-remote-https, ssh) go with it
        )
    except FileNotFoundError as error:
        raise ProjectSpecError("uri", f"{what} cannot be fetched: git is not installed") from error
    try:
        stdout, stderr = git.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as error:
        _stop(git)
        git.communicate()
        raise ProjectSpecError(
            "uri", f"{what} did not answer within {timeout:g} s; check the URL and the network"
        ) from error
    if git.returncode != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        why = shown(lines[-1].strip()) if lines else f"git exited with code {git.returncode}"
        raise ProjectSpecError(
            "uri",
            f"{what} cannot be reached ({why}); check the URL and the network, or give a "
            "local project folder",
        )
    if version and not stdout.strip() and not re.fullmatch(r"[0-9a-f]{7,40}", version):
        raise ProjectSpecError("version", f"{what} has no branch or tag {version!r}")


def _wait(
    context: StepContext, process: subprocess.Popen[str], tail: deque[str], timeout: float
) -> int:
    """Wait for the project, showing its latest output line as the step's progress.

    Progress is reported from this (the step's) thread only; the reader thread just appends.
    """
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(process.args, timeout)
        try:
            return process.wait(min(1.0, left))
        except subprocess.TimeoutExpired:
            latest = tail[-1] if tail else ""
            if latest and latest != shown:
                shown = latest
                context.progress(f"MLflow project: {latest[:80]}", 0, None)


def _copy(process: subprocess.Popen[str], log: Any, tail: deque[str]) -> None:
    """Copy the project's output to its log file, keeping the last lines for an error."""
    assert process.stdout is not None
    for line in process.stdout:
        log.write(line)
        tail.append(line.rstrip("\n"))


def _stop(process: subprocess.Popen[str]) -> None:
    """End the project and everything it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _fail_run(context: StepContext, run_id: str) -> None:
    from loopml.registry.tracking import use_tracking

    client = use_tracking(context.settings).MlflowClient()
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "FAILED")


def _logged_model(client: Any, experiment_id: str, run_id: str, name: str) -> Any:
    """The model the project logged under ``name`` in its run, or a DataError naming what it did."""
    found = client.search_logged_models(
        experiment_ids=[str(experiment_id)], filter_string=f"source_run_id = '{run_id}'"
    )
    named = [model for model in found if model.name == name]
    if not named:
        logged = ", ".join(sorted(model.name for model in found)) or "none"
        raise DataError(
            f"the project logged no model named {name!r} (it logged: {logged}); log it with "
            f"mlflow.<flavor>.log_model(..., name={name!r}) or set model_path"
        )
    return named[-1]


def _attach(
    client: Any, model_id: str, profile: Any, problem_type: str, classes: list[Any] | None
) -> None:
    """Put the reference profile and the output contract into the model's artifacts."""
    from loopml.core.profile import PROFILE_FILE
    from loopml.registry.project_model import OUTPUT_FILE, contract

    folder = Path(tempfile.mkdtemp(prefix="loopml-model-"))
    try:
        (folder / PROFILE_FILE).write_text(profile.to_json())
        (folder / OUTPUT_FILE).write_text(json.dumps(contract(problem_type, classes)))
        for name in (PROFILE_FILE, OUTPUT_FILE):
            client.log_model_artifact(model_id, str(folder / name))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _load(mlflow: Any, model_uri: str, problem_type: str, classes: list[Any] | None) -> Any:
    """The logged model as an estimator (``predict``, ``predict_proba``, ``classes_``)."""
    from loopml.registry.project_model import contract, wrap

    try:
        pyfunc = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise DataError(f"the project's model {model_uri} cannot be loaded: {exc}") from exc
    return wrap(pyfunc, contract(problem_type, classes))
