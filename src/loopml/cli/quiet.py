"""Quiet by default: what libraries say to their developers stays out of a person's terminal.

MLflow logs a pickle warning and a pip-version warning for every model it
saves, prints "Successfully registered model" and draws tqdm bars when it
downloads artifacts; scikit-learn prints ConvergenceWarning blocks from every
cross-validation worker. None of it is something a loopml user can act on, so
without ``-v`` it is silenced: MLflow's own log stream is turned off and
Python warnings are ignored, here and (through the environment) in the
worker processes joblib starts. loopml's own warnings and errors still show.
With ``-v`` everything is left as the libraries configure it, plus loopml at INFO.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
_QUIET_ENVIRONMENT = {
    "MLFLOW_LOGGING_LEVEL": "ERROR",  # read when MLflow is imported
    "PYTHONWARNINGS": "ignore",  # joblib/loky workers inherit it
}


MARKER = "_LOOPML_QUIETED"
"""Names of the variables a quiet ``loopml`` set, so a ``-v`` run it starts can undo them."""


class _State:
    quiet = False


def configure(verbose: bool, *, terminal: bool) -> None:
    """Set up logging and library chatter for one ``loopml`` command."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=_LOG_FORMAT)
    if not terminal or not verbose:
        _set("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _State.quiet = not verbose
    if verbose:
        logging.getLogger("loopml").setLevel(logging.INFO)
        # undo what a quiet loopml set: earlier in this process, or in the one that started us
        for name in os.environ.pop(MARKER, "").split(","):
            if name in _QUIET_ENVIRONMENT and os.environ.get(name) == _QUIET_ENVIRONMENT[name]:
                os.environ.pop(name)
        _loud_mlflow()
        return
    for name, value in _QUIET_ENVIRONMENT.items():
        _set(name, value)
    warnings.simplefilter("ignore")


def quiet_mlflow() -> None:
    """Turn MLflow's log stream off unless ``-v``; call before a command works with MLflow.

    Not done in :func:`configure` because importing MLflow takes seconds, and
    commands such as ``validate`` never need it.
    """
    if not _State.quiet:
        return
    from mlflow.utils import logging_utils

    # eprint ("Successfully registered model") and MLflow's loggers share this stream.
    # disable_logging() is not enough: MLflow's own context managers re-enable it.
    stream = logging_utils.MLFLOW_LOGGING_STREAM
    stream.write = len  # type: ignore[method-assign]
    stream.flush = _nothing  # type: ignore[method-assign]


def _loud_mlflow() -> None:
    logging_utils = sys.modules.get("mlflow.utils.logging_utils")
    if logging_utils is None:
        return
    stream = logging_utils.MLFLOW_LOGGING_STREAM
    for name in ("write", "flush"):
        stream.__dict__.pop(name, None)


def _set(name: str, value: str) -> None:
    if name not in os.environ:
        os.environ[name] = value
        marked = [n for n in os.environ.get(MARKER, "").split(",") if n]
        os.environ[MARKER] = ",".join([*marked, name])


def _nothing() -> None:
    return None
