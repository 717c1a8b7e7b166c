"""Adaptive micro-batching: concurrent requests share one ``predict`` call.

A scikit-learn pipeline costs about the same for 1 row as for 50, so under
load the server scores whatever has queued while the previous batch ran. A
lone request never waits: the batch is flushed as soon as the queue stops
growing, and at the latest after ``wait_s``. Small batches are scored on
the event loop itself (requests arriving meanwhile wait in socket buffers and
join the next batch); large ones on one worker thread, so the loop keeps
reading requests while numpy works. Each job keeps the
model it was admitted with, so a hot swap never changes a request mid-flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from loopml.core.errors import InputError
from loopml.serving.model import Scores, ServedModel
from loopml.serving.table import Table, concat_frame


@dataclass
class _Job:
    model: ServedModel
    table: Table
    future: asyncio.Future[Scores]


class MicroBatcher:
    """Queues jobs from request handlers and scores them in batches on one thread."""

    def __init__(
        self,
        wait_s: float,
        max_rows: int,
        on_batch: Callable[[int, int], None] | None = None,
        inline_rows: int = 64,
    ) -> None:
        self.wait_s = wait_s
        self.max_rows = max_rows
        self.inline_rows = inline_rows
        self._on_batch = on_batch
        self._jobs: list[_Job] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-predict")

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))
        self._executor.shutdown(wait=False)

    async def score(self, model: ServedModel, table: Table) -> Scores:
        if self._wake is None:  # not started (e.g. used outside the app's lifespan)
            return model.score(table.to_frame())
        future: asyncio.Future[Scores] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(model, table, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._jobs:
                continue
            deadline = time.perf_counter() + self.wait_s
            while self._rows() < self.max_rows and time.perf_counter() < deadline:
                before = len(self._jobs)
                await asyncio.sleep(0)
                if len(self._jobs) == before:
                    break  # nobody else is arriving: do not make this batch wait
            batch = self._take()
            if self._jobs:
                self._wake.set()
            for group in _by_model(batch):
                try:
                    if sum(job.table.n_rows for job in group) <= self.inline_rows:
                        # small batches: a thread hop costs more (GIL hand-offs) than it saves
                        results = _score_group(group)
                    else:
                        results = await loop.run_in_executor(self._executor, _score_group, group)
                except Exception as exc:  # delivered to every waiting request
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                for job, result in zip(group, results, strict=True):
                    if job.future.done():
                        continue
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
                if self._on_batch is not None:
                    self._on_batch(len(group), sum(job.table.n_rows for job in group))

    def _rows(self) -> int:
        return sum(job.table.n_rows for job in self._jobs)

    def _take(self) -> list[_Job]:
        taken, rows = 0, 0
        for job in self._jobs:
            if taken and rows + job.table.n_rows > self.max_rows:
                break
            taken += 1
            rows += job.table.n_rows
        batch, self._jobs = self._jobs[:taken], self._jobs[taken:]
        return batch


def _by_model(jobs: list[_Job]) -> list[list[_Job]]:
    groups: dict[int, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(id(job.model), []).append(job)
    return list(groups.values())


def _score_group(jobs: list[_Job]) -> list[Scores | BaseException]:
    """One predict call for the group; if the batch fails, each job alone to find the bad one."""
    model = jobs[0].model
    try:
        scores = model.score(concat_frame([job.table for job in jobs]))
    except InputError as exc:
        if len(jobs) == 1:
            return [exc]
        return [_alone(model, job.table) for job in jobs]
    out: list[Scores | BaseException] = []
    start = 0
    for job in jobs:
        end = start + job.table.n_rows
        out.append(
            Scores(
                scores.predictions[start:end],
                None if scores.probabilities is None else scores.probabilities[start:end],
            )
        )
        start = end
    return out


def _alone(model: ServedModel, table: Table) -> Scores | BaseException:
    try:
        return model.score(table.to_frame())
    except InputError as exc:
        return exc
