"""Small real steps the engine tests plug in, the way a third-party package would."""

from __future__ import annotations

from pathlib import Path

from loopml.core.context import StepContext
from loopml.steps import StepParams, step


class CountParams(StepParams):
    """Where to append a line each time the step runs."""

    ledger: str


@step("count_runs", params=CountParams, outputs=("values/counted", "reports/row_count"))
def count_runs(context: StepContext, params: CountParams) -> None:
    """Append to a ledger file, so a test can tell how often the step really ran."""
    with Path(params.ledger).open("a") as handle:
        handle.write(f"{context.run_id}\n")
    context.values["counted"] = len(context.require_frame())
    context.reports["row_count"] = {"rows": len(context.require_frame())}


class FlakyParams(StepParams):
    """Fails while the trip file exists."""

    trip_file: str


@step("flaky", params=FlakyParams, outputs=("data/train", "values/seen_counted"))
def flaky(context: StepContext, params: FlakyParams) -> None:
    """Raise while ``trip_file`` exists; otherwise double a column of the training frame."""
    if Path(params.trip_file).exists():
        raise RuntimeError(f"tripped by {params.trip_file}")
    frame = context.require_frame().copy()
    frame["doubled"] = frame["a"] * 2
    context.data["train"] = frame
    context.values["seen_counted"] = context.values["counted"]


class PeekParams(StepParams):
    """A CSV loader that counts how often its header is peeked at."""

    path: str
    peeks: str
    frame: str = "train"


def _peek_and_count(params: PeekParams, base_dir: Path) -> list[str] | None:
    with Path(params.peeks).open("a") as handle:
        handle.write("peek\n")
    return Path(params.path).read_text().splitlines()[0].split(",")


@step(
    "counted_loader",
    params=PeekParams,
    peek_columns=_peek_and_count,
    outputs=("data/{frame}",),
)
def counted_loader(context: StepContext, params: PeekParams) -> None:
    """Load a CSV; the spec check peeks at its header through a ledger."""
    import pandas as pd

    context.data[params.frame] = pd.read_csv(params.path)


class SneakyParams(StepParams):
    """Nothing to set."""


@step("sneaky", params=SneakyParams, outputs=("values/allowed",))
def sneaky(context: StepContext, params: SneakyParams) -> None:
    """Write one declared and one undeclared output."""
    context.values["allowed"] = 1
    context.values["smuggled"] = 2


class TripParams(StepParams):
    """Fails while the trip file exists."""

    trip_file: str


@step("tripwire", params=TripParams, outputs=())
def tripwire(context: StepContext, params: TripParams) -> None:
    """Raise while ``trip_file`` exists; write nothing."""
    if Path(params.trip_file).exists():
        raise RuntimeError(f"tripped by {params.trip_file}")
