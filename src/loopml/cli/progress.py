"""Rich progress bars for a running pipeline: one for the steps, one for work inside a step."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from loopml.core.status import Status


class RichObserver:
    """Shows step progress and in-step progress (estimators, folds) while a run goes.

    Bars are drawn only on a terminal; in a pipe or a CI log they would be
    redrawn as garbage lines, so there only each step's outcome is printed.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._steps: TaskID | None = None
        self._work: dict[str, TaskID] = {}

    def __enter__(self) -> RichObserver:
        if self.bars:
            self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.bars:  # stopping bars never started prints a blank line into a pipe
            self.progress.stop()

    def run_started(self, run_id: str, steps: Sequence[str], first: int) -> None:
        resumed = f", resuming at step {first}" if first else ""
        self.console.print(f"run [cyan]{run_id}[/] ({len(steps)} steps{resumed})", soft_wrap=True)
        self._steps = self.progress.add_task("pipeline", total=len(steps), completed=first)

    def step_started(self, position: int, name: str) -> None:
        if self._steps is not None:
            self.progress.update(self._steps, description=f"step {position}: {name}")

    def step_progress(self, description: str, completed: float, total: float | None) -> None:
        if not self.bars:
            return
        key = description.split(" ", 1)[0] if total is not None else description
        task = self._work.get(key)
        if task is None:
            task = self.progress.add_task(description, total=total)
            self._work[key] = task
        self.progress.update(task, description=description, completed=completed, total=total)

    def step_finished(self, position: int, name: str, status: str, seconds: float) -> None:
        for task in self._work.values():
            self.progress.remove_task(task)
        self._work.clear()
        mark = "[green]done[/]" if status == Status.SUCCEEDED else f"[red]{status}[/]"
        self.console.print(f"  step {position} {name}: {mark} in {seconds:.2f}s", soft_wrap=True)
        if self._steps is not None:
            self.progress.advance(self._steps)
