"""Who, where and with what code a run executes, and what repeating it needs."""

from __future__ import annotations

import getpass
import inspect
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import loopml
from loopml.core.reproducibility import (
    code_manifest,
    digest,
    loopml_package,
    resolved_environment,
)
from loopml.store.runs import Provenance, Reproducibility

if TYPE_CHECKING:
    from loopml.engine.validate import CheckedSpec


def provenance(executor: str, base_dir: Path) -> Provenance:
    """The executor label, host, user, loopml version and the spec folder's git commit."""
    return Provenance(
        executor=executor,
        host=socket.gethostname(),
        user=_user(),
        loopml_version=loopml.__version__,
        git_commit=git_commit(base_dir),
    )


def git_commit(folder: Path) -> str | None:
    """HEAD of the git work tree holding ``folder``, when there is one."""
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def draw_seed() -> int:
    """A fresh seed for a run whose spec sets none; recorded, so the run can be repeated."""
    import secrets

    return secrets.randbelow(2**31 - 1)


def step_sources(checked: CheckedSpec) -> list[Path]:
    """The module files of the spec's plugin steps (loopml's own are in the package hash)."""
    found: list[Path] = []
    for item in checked.steps:
        func = item.definition.func
        if getattr(func, "__module__", "").split(".")[0] == "loopml":
            continue
        try:
            source = inspect.getsourcefile(func)
        except TypeError:
            source = None
        if source:
            found.append(Path(source))
    return found


def reproducibility(
    checked: CheckedSpec,
    *,
    seed: int | None,
    smoke: bool,
    threads: int | None,
    extra_paths: Sequence[Path] = (),
    reproduces: str | None = None,
) -> Reproducibility:
    """The run's seed and profile, a hash of all code that runs and of the environment.

    ``extra_paths`` are folders or files a step added to ``context.code_paths``
    (an MLproject's sources), hashed with loopml's package and the plugin step
    modules.
    """
    code = code_manifest([*step_sources(checked), *extra_paths])
    environment = resolved_environment()
    return Reproducibility(
        seed=seed,
        smoke=smoke,
        code_hash=digest(code),
        environment_hash=digest(environment),
        detail={
            "threads": threads,
            "loopml_git_commit": git_commit(loopml_package()),
            "code_paths": [str(path) for path in extra_paths],
            "code": code,
            "environment": environment,
            "reproduces": reproduces,
        },
    )
