"""Who, where and with what code a run executes."""

from __future__ import annotations

import getpass
import socket
import subprocess
from pathlib import Path

import loopml
from loopml.store.runs import Provenance


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
