"""``loopml runs reproduce`` and ``loopml models compare``: check a result by making it again.

Both print a table on a terminal and the shapes of :mod:`loopml.cli.shapes`
with ``-o json``. ``reproduce`` exits 1 when a metric came out different (or
missing), so a script can use it as a check; 0 when every metric is equal or
within the tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli.output import Format, FormatOpt, emit, say, show

if TYPE_CHECKING:
    from loopml.cli.shapes import ModelComparison, ReproductionResult
    from loopml.engine.reproduce import Reproduction
    from loopml.steps.compare import Comparison


def reproduce(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix) to reproduce.")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A snapshot of the run's data (it must have the recorded fingerprint).",
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(min=0.0, help="A metric this close to the original counts as reproduced."),
    ] = 0.0,
    format: FormatOpt = Format.table,
) -> None:
    """Re-run a run's spec with its seed on its data; list code, environment and metric changes."""
    from loopml.cli import quiet
    from loopml.cli.common import err, fail, out, settings
    from loopml.cli.progress import RichObserver
    from loopml.core.errors import LoopmlError
    from loopml.engine.reproduce import reproduce_run

    config = settings()
    try:
        quiet.quiet_mlflow()
        with RichObserver(out if format is Format.table else err) as observer:
            found = reproduce_run(run_id, config, data=data, tolerance=tolerance, observer=observer)
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit(_shape(found))
    else:
        _print(found)
    if any(m.verdict in ("different", "missing") for m in found.metrics):
        raise typer.Exit(1)


def _shape(found: Reproduction) -> ReproductionResult:
    from loopml.cli.shapes import Change, MetricRow, ReproductionResult

    return ReproductionResult(
        original_run_id=found.original.id,
        run_id=found.run.id,
        exact=found.exact,
        tolerance=found.tolerance,
        data_source=found.data_source,
        data_fingerprint=found.data_fingerprint,
        seed=found.run.seed,
        smoke=found.run.smoke,
        code_changes=[Change(**c) for c in found.code_changes],
        environment_changes=[Change(**c) for c in found.environment_changes],
        counts=found.counts,
        notes=list(found.notes),
        metrics=[
            MetricRow(name=m.name, original=m.original, reproduced=m.reproduced, verdict=m.verdict)
            for m in found.metrics
        ],
    )


_STYLE = {
    "equal": "green",
    "within_tolerance": "yellow",
    "different": "red",
    "missing": "red",
    "new": "yellow",
    "timing": "dim",
}


def _print(found: Reproduction) -> None:
    from rich.table import Table

    from loopml.cli.common import escape, out

    for title, changes in (
        ("code", found.code_changes),
        ("environment", found.environment_changes),
    ):
        if not changes:
            say(out, f"[green]{title}: unchanged[/]")
            continue
        table = Table(title=f"{title} changes ({len(changes)})")
        for column in ("name", "was", "now"):
            table.add_column(column)
        for change in changes:
            table.add_row(escape(change["name"]), escape(change["was"]), escape(change["now"]))
        show(out, table)
    table = Table(title=f"metrics of run {found.original.id[:12]} vs {found.run.id[:12]}")
    for column in ("metric", "original", "reproduced", "verdict"):
        table.add_column(column)
    for item in found.metrics:
        style = _STYLE.get(item.verdict, "")
        table.add_row(
            escape(item.name),  # "[step 1]" is not Rich markup
            _num(item.original),
            _num(item.reproduced),
            f"[{style}]{item.verdict}[/]" if style else item.verdict,
        )
    show(out, table)
    counts = ", ".join(f"{n} {v}" for v, n in sorted(found.counts.items()))
    for note in found.notes:
        say(out, f"[yellow]note:[/] {note}")
    verdict = "reproduced exactly" if found.exact else "not reproduced exactly"
    say(out, f"run {found.run.id}: {verdict} ({counts}; tolerance {found.tolerance:g})")


def _num(value: float | None) -> str:
    return "-" if value is None else repr(value)


def compare(
    name: Annotated[str, typer.Argument(help="Registered model name.", show_default=False)],
    v1: Annotated[str, typer.Argument(help="First version (the gate's champion side).")],
    v2: Annotated[str, typer.Argument(help="Second version (the gate's challenger side).")],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Labelled rows both versions score: .csv, .parquet or .pq (as predict-batch).",
        ),
    ],
    target: Annotated[
        str | None, typer.Option(help="Label column; default the target V2 was trained on.")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="Main metric; default the one V2 was trained for.")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="The gate's absolute bar; default V2's gate's.")
    ] = None,
    min_delta: Annotated[
        float | None, typer.Option(min=0.0, help="The gate's min_delta; default V2's gate's.")
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Score two versions on the same rows: every metric side by side, and the gate's verdict."""
    from loopml.batch.files import check_input, read_table
    from loopml.cli.common import fail, settings
    from loopml.cli.quiet import quiet_mlflow
    from loopml.core.errors import InputFileError, LoopmlError
    from loopml.steps.compare import compare_versions

    config = settings()
    try:
        check_input(data, role="--data")  # the reader predict-batch streams with: same formats
        quiet_mlflow()
        frame = read_table(data)
        found = compare_versions(
            config,
            name,
            v1,
            v2,
            frame,
            target=target,
            metric=metric,
            threshold=threshold,
            min_delta=min_delta,
        )
    except InputFileError as error:
        text = str(error)
        fail(InputFileError(text if str(data) in text else f"--data {data}: {text}"))
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit(_comparison_shape(found))
        return
    _print_comparison(found)


def _comparison_shape(found: Comparison) -> ModelComparison:
    from loopml.cli.shapes import ModelComparison, VersionScore

    return ModelComparison(
        model=found.name,
        v1=found.v1,
        v2=found.v2,
        rows=found.rows,
        target=found.target,
        problem_type=found.problem_type,
        main_metric=found.main_metric,
        threshold=found.threshold,
        min_delta=found.min_delta,
        winner=found.winner,
        v2_clears_threshold=found.v2_clears,
        gate_would_promote_v2=found.would_promote,
        reason=found.reason,
        metrics=[
            VersionScore(metric=m, v1=one, v2=two, better=found.better(m))
            for m, (one, two) in found.scores.items()
        ],
    )


def _print_comparison(found: Comparison) -> None:
    from rich.table import Table

    from loopml.cli.common import out

    table = Table(title=f"{found.name}: version {found.v1} vs {found.v2} on {found.rows} rows")
    for column in ("metric", f"v{found.v1}", f"v{found.v2}", "better"):
        table.add_column(column)
    for metric, (one, two) in found.scores.items():
        label = f"[bold]{metric}[/] (main)" if metric == found.main_metric else metric
        table.add_row(label, _fmt(one), _fmt(two), found.better(metric))
    show(out, table)
    colour = "green" if found.would_promote else "yellow"
    say(out, f"[{colour}]{found.reason}[/]")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
