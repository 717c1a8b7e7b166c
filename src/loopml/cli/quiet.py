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
import warnings

_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure(verbose: bool, *, terminal: bool) -> None:
    """Set up logging and library chatter for one ``loopml`` command."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=_LOG_FORMAT)
    if not terminal or not verbose:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if verbose:
        logging.getLogger("loopml").setLevel(logging.INFO)
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # read when MLflow is imported
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # joblib/loky workers inherit it
    warnings.simplefilter("ignore")
    global _quiet
    _quiet = True


_quiet = False


def quiet_mlflow() -> None:
    """Turn MLflow's log stream off unless ``-v``; call before a command works with MLflow.

    Not done in :func:`configure` because importing MLflow takes seconds, and
    commands such as ``validate`` never need it.
    """
    if not _quiet:
        return
    from mlflow.utils import logging_utils

    # eprint ("Successfully registered model") and MLflow's loggers share this stream.
    # disable_logging() is not enough: MLflow's own context managers re-enable it.
    stream = logging_utils.MLFLOW_LOGGING_STREAM
    stream.write = len  # type: ignore[method-assign]
    stream.flush = _nothing  # type: ignore[method-assign]


def _nothing() -> None:
    return None
