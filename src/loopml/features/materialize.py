"""Keeping the online store fresh: incremental materialization and its last run.

``loopml features materialize`` and the monitor service's ``materialize`` option call
:func:`materialize`; each run's outcome is kept as JSON under the loopml home
(``feature_store/<repo digest>.json``), which ``loopml features status`` and the stale
store alert read next to what Feast's registry says each view is materialized up to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopml.core.settings import Settings
from loopml.features.store import open_store, repo_dir


def _record_path(settings: Settings, repo: Path) -> Path:
    digest = hashlib.sha256(str(repo).encode()).hexdigest()[:16]
    return Path(settings.home) / "feature_store" / f"{digest}.json"


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(record, indent=2, sort_keys=True))
    scratch.replace(path)  # readers see the old run or the new one, never half of one


def materialize(
    settings: Settings, repo: str | Path | None = None, *, end: datetime | None = None
) -> dict[str, Any]:
    """Load feature rows newer than the last run (up to ``end``, default now) online.

    Returns the run's record (also written for ``status``): ``status`` ``ok`` or
    ``failed`` with the error, the views and what each is now materialized until.
    A failure is recorded and then raised.
    """
    folder = repo_dir(repo or settings.feature_repo or ".")
    end = end or datetime.now(UTC)
    started = time.time()
    record: dict[str, Any] = {
        "repo": str(folder),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "end": end.isoformat(),
    }
    try:
        store = open_store(folder)
        store.refresh_registry()
        with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress to stdout
            store.materialize_incremental(end_date=end)
        store.refresh_registry()
        record["views"] = _views(store)
        record["status"] = "ok"
    except Exception as exc:
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record["seconds"] = round(time.time() - started, 3)
        _write(_record_path(settings, folder), record)
    return record


def _views(store: Any) -> dict[str, str | None]:
    views: dict[str, str | None] = {}
    for view in store.list_feature_views():
        until = view.most_recent_end_time
        views[view.name] = None if until is None else until.astimezone(UTC).isoformat()
    return views


def status(settings: Settings, repo: str | Path | None = None) -> dict[str, Any]:
    """The last materialization run and how stale each online view is now.

    A view is ``stale`` when it was never materialized or its data ends more than
    ``settings.feature_stale_after_s`` ago.
    """
    folder = repo_dir(repo or settings.feature_repo or ".")
    path = _record_path(settings, folder)
    last = json.loads(path.read_text()) if path.is_file() else None
    store = open_store(folder)
    store.refresh_registry()
    now = datetime.now(UTC)
    views = []
    for name, until in sorted(_views(store).items()):
        age = None if until is None else (now - datetime.fromisoformat(until)).total_seconds()
        views.append(
            {
                "view": name,
                "materialized_until": until,
                "age_s": None if age is None else round(age, 1),
                "stale": age is None or age > settings.feature_stale_after_s,
            }
        )
    return {
        "repo": str(folder),
        "stale_after_s": settings.feature_stale_after_s,
        "last_run": last,
        "views": views,
    }
