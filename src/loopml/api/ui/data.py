"""What the console's pages show, read from the registry, MLflow and the metadata store.

Plain dicts and dataclasses for the templates; nothing here renders HTML or
moves an alias. A version's training report joins three records: the
registered version (its tags: gate decision, approval state, lineage), the
MLflow run that logged the model (CV and holdout metrics, its plots) and that
run's parent, the pipeline run (comparison grid, gate figures, evaluation
plots). Lineage is every ``loopml.*`` tag and parameter those records hold,
read generically, so a new provenance tag shows without a change here.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.core.settings import Settings
from loopml.registry import models as registry
from loopml.registry.tracking import use_tracking

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
"""Plots the console serves; SVG is left out: it can carry script."""
PARENT_TAG = "mlflow.parentRunId"
MAX_GRID_ROWS = 50


@dataclass(frozen=True)
class Plot:
    """One image MLflow holds for a version: which run (``model`` or ``run``) and its path."""

    source: str
    path: str

    @property
    def url_path(self) -> str:
        return f"{self.source}/{self.path}"


@dataclass
class VersionReport:
    """Everything the version page shows."""

    name: str
    version: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    source: str
    run_id: str | None
    parent_run_id: str | None
    approval: str | None
    gate: dict[str, Any] = field(default_factory=dict)
    cv: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    holdout: list[tuple[str, float]] = field(default_factory=list)
    grid_columns: list[str] = field(default_factory=list)
    grid_rows: list[list[Any]] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    lineage: list[tuple[str, str]] = field(default_factory=list)
    loopml_run_id: str | None = None


def _client(settings: Settings) -> Any:
    return use_tracking(settings).MlflowClient()


def models_overview(settings: Settings) -> list[dict[str, Any]]:
    """Every registered model with its aliases and versions (newest first)."""
    found = []
    for name, aliases in sorted(registry.list_models(settings).items()):
        versions = registry.list_versions(settings, name)
        found.append(
            {
                "name": name,
                "aliases": dict(sorted(aliases.items())),
                "versions": versions,
                "pending": [
                    v.version for v in versions if v.tags.get(registry.APPROVAL_TAG) == "pending"
                ],
            }
        )
    return found


def _run(client: Any, run_id: str | None) -> Any | None:
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _plots(client: Any, run_id: str, source: str, folder: str = "") -> list[Plot]:
    """Images under ``folder`` of run ``run_id``, walking sub-folders."""
    from mlflow.exceptions import MlflowException

    try:
        entries = client.list_artifacts(run_id, folder or None)
    except (MlflowException, OSError):
        return []
    found: list[Plot] = []
    for entry in entries:
        if entry.is_dir:
            found.extend(_plots(client, run_id, source, entry.path))
        elif Path(entry.path).suffix.lower() in IMAGE_TYPES:
            found.append(Plot(source, entry.path))
    return found


def _comparison(client: Any, run_id: str) -> tuple[list[str], list[list[Any]]]:
    """The comparison grid ``train_model`` logged (``comparison.json``, MLflow's table form)."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="loopml-ui-") as folder:
        try:
            local = client.download_artifacts(run_id, "comparison.json", folder)
            table = json.loads(Path(local).read_text())
        except (MlflowException, OSError, ValueError):
            return [], []
    columns = [str(c) for c in table.get("columns", [])]
    rows = [list(row) for row in table.get("data", [])][:MAX_GRID_ROWS]
    return columns, rows


def version_report(settings: Settings, name: str, version: str) -> VersionReport:
    """The training report of version ``version`` of ``name`` (ModelNotFoundError if none)."""
    found = registry.get_version(settings, name, version)
    aliases = next(
        (v.aliases for v in registry.list_versions(settings, name) if v.version == version), ()
    )
    client = _client(settings)
    model_run = _run(client, found.run_id)
    parent_id = model_run.data.tags.get(PARENT_TAG) if model_run is not None else None
    parent = _run(client, parent_id)
    report = VersionReport(
        name=name,
        version=version,
        aliases=aliases,
        tags=dict(found.tags),
        source=found.source,
        run_id=found.run_id,
        parent_run_id=parent_id,
        approval=found.tags.get(registry.APPROVAL_TAG),
    )
    if model_run is not None:
        metrics = model_run.data.metrics
        names = sorted({m[3:-5] for m in metrics if re.fullmatch(r"cv_.+_mean", m)})
        report.cv = [(n, metrics.get(f"cv_{n}_mean"), metrics.get(f"cv_{n}_std")) for n in names]
        report.holdout = sorted(
            (m[len("holdout_") :], v) for m, v in metrics.items() if m.startswith("holdout_")
        )
        report.plots += _plots(client, model_run.info.run_id, "model")
    if parent is not None:
        report.grid_columns, report.grid_rows = _comparison(client, parent.info.run_id)
        report.plots += _plots(client, parent.info.run_id, "run")
        report.gate = {
            **{k: v for k, v in parent.data.tags.items() if k.startswith("loopml.gate.")},
            **{k: v for k, v in parent.data.metrics.items() if k.startswith("gate_")},
            **{k: v for k, v in parent.data.params.items() if k.startswith("gate_")},
        }
        report.loopml_run_id = parent.data.tags.get("loopml.run_id")
    report.lineage = _lineage(found.tags, parent)
    report.loopml_run_id = report.loopml_run_id or found.tags.get("loopml.run_id")
    profile = registry.reference_profile(settings, name, version)
    if profile is not None:
        report.profile = {
            "rows": profile.rows,
            "target": profile.target,
            "columns": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "dtype": c.dtype,
                    "null_rate": c.null_rate,
                    "distinct": c.distinct,
                    "minimum": c.minimum,
                    "maximum": c.maximum,
                }
                for c in profile.columns
            ],
        }
    return report


def _lineage(tags: Mapping[str, str], parent: Any | None) -> list[tuple[str, str]]:
    """Every provenance record: ``loopml.*`` tags of the version and of its pipeline run."""
    found: dict[str, str] = {}
    if parent is not None:
        found["mlflow run"] = parent.info.run_id
        for key, value in parent.data.tags.items():
            if key.startswith("loopml.") and not key.startswith("loopml.gate."):
                found[key] = value
    for key, value in tags.items():
        if key.startswith("loopml.") and not key.startswith(("loopml.gate", "loopml.approval")):
            found[key] = value
    return sorted(found.items())


def plot_bytes(settings: Settings, name: str, version: str, url_path: str) -> tuple[bytes, str]:
    """The image at ``url_path`` of the version's report, if and only if the report lists it.

    The path is matched against the runs' artifact listings, never joined to a
    folder, so ``..`` or an absolute path cannot reach anything else.
    """
    from loopml.core.errors import LoopmlError

    report_plots = _version_plots(settings, name, version)
    plot = next((p for p in report_plots if p.url_path == url_path), None)
    if plot is None:
        raise LoopmlError(f"version {version} of {name!r} has no plot {url_path!r}")
    found = registry.get_version(settings, name, version)
    client = _client(settings)
    run_id = found.run_id
    if plot.source == "run":
        run = _run(client, run_id)
        run_id = run.data.tags.get(PARENT_TAG) if run is not None else None
    with tempfile.TemporaryDirectory(prefix="loopml-ui-") as folder:
        local = client.download_artifacts(run_id, plot.path, folder)
        return Path(local).read_bytes(), IMAGE_TYPES[Path(plot.path).suffix.lower()]


def _version_plots(settings: Settings, name: str, version: str) -> list[Plot]:
    found = registry.get_version(settings, name, version)
    client = _client(settings)
    run = _run(client, found.run_id)
    if run is None:
        return []
    plots = _plots(client, run.info.run_id, "model")
    parent_id = run.data.tags.get(PARENT_TAG)
    if parent_id:
        plots += _plots(client, parent_id, "run")
    return plots


def monitoring_checks(settings: Settings, name: str) -> list[Any]:
    """Every stored monitoring check of model ``name``, in window order."""
    from loopml.store.monitoring import MonitorStore

    store = MonitorStore.open(settings.database)
    try:
        return list(store.checks(name))
    finally:
        store.engine.dispose()


def monitoring_overview(settings: Settings) -> list[dict[str, Any]]:
    """Each monitored model with its windows (newest first): when, rows, status of each check."""
    import sqlalchemy as sa

    from loopml.store.monitoring import MonitorCheck, MonitorStore

    store = MonitorStore.open(settings.database)
    try:
        return _monitoring_overview(store, MonitorCheck.__table__, sa)
    finally:
        store.engine.dispose()


def _monitoring_overview(store: Any, table: Any, sa: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        names = sorted(connection.execute(sa.select(table.c.model_name).distinct()).scalars())
    overview = []
    for name in names:
        windows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for check in store.checks(name):
            key = (check.window_start, check.window_end)
            window = windows.setdefault(
                key,
                {
                    "index": check.window_index,
                    "start": check.window_start,
                    "end": check.window_end,
                    "rows": check.rows,
                    "complete": check.complete,
                    "version": check.model_version,
                    "checks": {},
                },
            )
            window["checks"][check.kind] = check.status
        ordered = sorted(windows.values(), key=lambda w: (w["end"], w["start"]))
        for number, window in enumerate(ordered):
            window["number"] = number  # the report's anchor: window-<number>, in the same order
        overview.append({"name": name, "windows": list(reversed(ordered))[:50]})
    return overview


RUN_FIELDS_SHOWN_ELSEWHERE = frozenset(
    {"id", "status", "steps", "values", "spec_text", "error", "traceback"}
)


def run_provenance(run: Any) -> list[tuple[str, Any]]:
    """Every recorded field of a run but its steps, spec and error (shown apart), by name.

    Read from the record's fields, not a fixed list, so provenance a later
    version records (a code hash, the environment's hash) shows without a change here.
    """
    import dataclasses

    return [
        (item.name.replace("_", " "), getattr(run, item.name))
        for item in dataclasses.fields(run)
        if item.name not in RUN_FIELDS_SHOWN_ELSEWHERE
    ]
