"""``loopml``: validate and run pipeline specs, inspect and resume runs."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli import output, quiet
from loopml.cli.common import SpecArg, err, fail, out, settings, where
from loopml.cli.common import escape as _escape
from loopml.cli.export import export as _export_command
from loopml.cli.features import features_app
from loopml.cli.jobs import install as _install_queue_commands
from loopml.cli.models import models_app
from loopml.cli.monitor import monitor
from loopml.cli.output import Format, FormatOpt, emit, say, show
from loopml.cli.reproduce import compare as _compare_command
from loopml.cli.reproduce import reproduce as _reproduce_command
from loopml.cli.serve import serve as _serve_command
from loopml.core.errors import LoopmlError

app = typer.Typer(
    name="loopml",
    help="A closed MLOps loop for tabular ML: specs in, gated models serving, runs recorded.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="Inspect and resume recorded pipeline runs.", no_args_is_help=True)
steps_app = typer.Typer(help="The steps a spec can use.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(steps_app, name="steps")
app.add_typer(models_app, name="models")
app.add_typer(features_app, name="features")
app.command("serve")(_serve_command)
app.command("export")(_export_command)
runs_app.command("reproduce")(_reproduce_command)
models_app.command("compare")(_compare_command)

output.wide_help()

__all__ = ["SpecArg", "app", "err", "fail", "out", "settings", "where"]


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Log details, and let libraries' warnings through."),
    ] = False,
) -> None:
    quiet.configure(verbose, terminal=err.is_terminal)
    output.fit(out)
    output.fit(err)


@app.command()
def validate(spec: SpecArg) -> None:
    """Check a spec without running it: every problem at once, exit code 2 if any."""
    from loopml.cli.datafiles import check_data_files
    from loopml.engine import load_spec
    from loopml.steps.registry import StepRegistry

    try:
        checked = load_spec(spec, StepRegistry.with_builtins())
        check_data_files(checked.spec)
    except LoopmlError as error:
        fail(error)
    out.print(
        f"[green]ok[/] {spec}: {len(checked.steps)} steps "
        f"({', '.join(checked.step_names)}), "
        f"target {checked.experiment.target!r}, main metric {checked.experiment.main_metric}"
    )


@app.command()
def run(
    spec: SpecArg,
    format: FormatOpt = Format.table,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="Fast profile (2 folds, no tuning, small ensembles), full data; no alias moves.",
        ),
    ] = False,
) -> None:
    """Run a spec end to end on this machine, with progress, and print what it produced."""
    from loopml.cli.progress import RichObserver
    from loopml.cli.report import print_result
    from loopml.engine import load_spec, run_pipeline
    from loopml.steps.registry import StepRegistry

    config = settings()
    registry = StepRegistry.with_builtins()
    try:
        checked = load_spec(spec, registry)
        quiet.quiet_mlflow()
        with RichObserver(out if format is Format.table else err) as observer:
            result = run_pipeline(
                checked, config, registry=registry, observer=observer, smoke=smoke
            )
    except LoopmlError as error:
        fail(error)
    print_result(out, result, format)


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs of this model name.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """List recorded pipeline runs, newest first."""
    from loopml.cli.render import runs_table
    from loopml.cli.shapes import RunSummary
    from loopml.store import RunStore

    config = settings()
    try:
        store = RunStore(config.database)
        runs = store.list_runs(limit=limit, status=status, model_name=model)
        store.close()
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit([RunSummary.of(run) for run in runs])
    if not runs:
        which = " matching" if status or model else ""
        say(
            err if format is Format.json else out,
            f"no{which} runs recorded in {where(config)}; `loopml run SPEC` starts one",
        )
        return
    if format is Format.table:
        show(out, runs_table(runs))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    spec: Annotated[bool, typer.Option(help="Also print the spec as given.")] = False,
    trace: Annotated[bool, typer.Option(help="Also print the failure traceback.")] = False,
    format: FormatOpt = Format.table,
) -> None:
    """Show one run: provenance, status, and every step attempt with timings and outputs."""
    from loopml.cli.render import run_details, steps_table
    from loopml.cli.shapes import RunDetail
    from loopml.store import RunStore

    try:
        store = RunStore(settings().database)
        found = store.get_run(run_id)
        store.close()
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit(RunDetail.of(found))
        return
    show(out, run_details(found))
    show(out, steps_table(found))
    if spec:
        from loopml.core.access import mask_secrets

        out.print(mask_secrets(found.spec_text), markup=False, highlight=False)
    if trace and found.traceback:
        out.print(found.traceback, markup=False, highlight=False)


@runs_app.command("resume")
def runs_resume(
    run_id: Annotated[str, typer.Argument(help="Failed run id (or prefix).")],
    format: FormatOpt = Format.table,
) -> None:
    """Re-run a failed run from its failed step, reusing what the earlier steps produced."""
    from loopml.cli.progress import RichObserver
    from loopml.cli.report import print_result
    from loopml.engine import resume_run

    config = settings()
    try:
        quiet.quiet_mlflow()
        with RichObserver(out if format is Format.table else err) as observer:
            result = resume_run(run_id, config, observer=observer)
    except LoopmlError as error:
        fail(error)
    print_result(out, result, format)


@steps_app.command("list")
def steps_list() -> None:
    """Every registered step, where it comes from, and plugins that failed to load."""
    from rich.table import Table

    from loopml.steps.registry import StepRegistry

    registry = StepRegistry.with_builtins()
    loaded = registry.load_all()
    table = Table(title="steps")
    for column in ("step", "from", "parameters", "summary"):
        table.add_column(column)
    for name in registry.names():
        definition = loaded.get(name)
        params = ", ".join(definition.params.model_fields) if definition else "-"
        summary = definition.summary if definition else "[red]failed to load[/]"
        table.add_row(name, registry.origins[name], params, summary)
    show(out, table)
    for why in registry.problems().values():
        err.print(f"[yellow]warning:[/] {_escape(why)}")
    if registry.problems():
        err.print(f"{len(registry.problems())} step(s) unavailable")


@app.command()
def version() -> None:
    """Print the loopml version."""
    import loopml

    out.print(loopml.__version__)


app.command()(monitor)
_install_queue_commands(app)
