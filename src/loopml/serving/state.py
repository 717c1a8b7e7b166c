"""Everything one server process holds: the model slot, batcher, prediction log and watcher.

:meth:`ServingState.score` is the one path every protocol takes from checked
rows to logged predictions. :meth:`ServingState.check` is the single place a
request's rows are inspected before predict: the signature has been enforced
already, and further checks (schema skew against the reference profile) are
added to ``checks`` and raise :class:`~loopml.core.errors.InputError` to
answer 422.
"""

from __future__ import annotations

import gc
import itertools
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.core.settings import Settings
from loopml.serving.batcher import MicroBatcher
from loopml.serving.metrics import ServerMetrics
from loopml.serving.model import ModelRef, ServedModel, limit_threads, load_model
from loopml.serving.predlog import Label, PredictionLogger, Scored
from loopml.serving.skew import profile_skew
from loopml.serving.table import Table
from loopml.serving.watcher import ModelSlot, ModelWatcher

RequestCheck = Callable[[ServedModel, Table], None]
"""A check of a request's rows before predict; raises InputError (-> 422) to refuse them."""


@dataclass
class Outcome:
    """One request's answer: ids, predictions and probabilities, as arrays and JSON lists."""

    model: ServedModel
    ids: list[str]
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    prediction_list: list[Any]
    probability_list: list[list[float]] | None


class PredictionIds:
    """Unique 32-hex ids: a random per-process prefix and a counter (cheaper than uuid4)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(10)
        self._counter = itertools.count()

    def take(self, n: int) -> list[str]:
        prefix, counter = self._prefix, self._counter
        return [f"{prefix}{next(counter):012x}" for _ in range(n)]


class ServingState:
    def __init__(
        self,
        settings: Settings,
        ref: ModelRef,
        model: ServedModel,
        *,
        checks: Sequence[RequestCheck] = (),
    ) -> None:
        self.settings = settings
        self.ref = ref
        self.slot = ModelSlot(model)
        self.metrics = ServerMetrics()
        self.metrics.set_model(model.name, model.version)
        self.checks = list(checks)
        self.batcher = MicroBatcher(
            settings.serve_batch_wait_ms / 1000,
            settings.serve_max_batch_rows,
            on_batch=self._batched,
        )
        self.logger = PredictionLogger(
            settings.database,
            settings.spool_dir,
            flush_s=settings.serve_log_flush_s,
            retry_s=max(settings.serve_log_flush_s * 4, 0.5),
            timeout_s=settings.serve_log_timeout_s,
            drain_s=settings.serve_log_drain_s,
            label_grace_s=settings.serve_label_grace_s,
            enabled=settings.serve_journal,
        )
        self.watcher = (
            ModelWatcher(
                settings, ref, self.slot, settings.serve_watch_interval_s, on_swap=self._swapped
            )
            if ref.watches
            else None
        )
        self.ids = PredictionIds()

    @classmethod
    def load(
        cls, settings: Settings, model: str, *, checks: Sequence[RequestCheck] = ()
    ) -> ServingState:
        """Resolve and load ``model`` (``NAME@alias``, ``NAME/version``, ``models:/...``)."""
        limit_threads()
        ref = ModelRef.parse(model)
        return cls(settings, ref, load_model(settings, ref), checks=checks)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        # The prediction log writer and the watcher share the GIL with the request path;
        # a shorter switch interval (default 5 ms) keeps their work from showing in p99.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        # A full garbage collection walks every object of MLflow, pandas and the model
        # (~200 ms here): freeze what exists now so collections only see request garbage.
        gc.freeze()
        self.logger.start()
        self.batcher.start()
        if self.watcher is not None:
            self.watcher.start()

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        await self.batcher.stop()
        self.logger.stop()

    # -- the request path ------------------------------------------------------------------------

    def check(self, model: ServedModel, table: Table) -> dict[str, Any] | None:
        """The one hook before predict; raises InputError (-> 422) to refuse the rows.

        When ``model`` has a reference profile, schema skew is refused here and
        the request's value skew is returned, to be recorded on its predictions.
        """
        for check in self.checks:
            check(model, table)
        if model.checker is None:
            return None
        return profile_skew(model.checker, table)

    async def score(self, model: ServedModel, table: Table, started: float) -> Outcome:
        """Check, score (micro-batched) and journal the predictions; never waits on the DB.

        The predictions are in this process's journal before the answer is built.
        A version trained from a feature store gets its stored features joined first
        (``serving.features``), so the checks, the model and the journal see whole rows.
        """
        if model.features is not None:
            table = await model.features.join(table)
        skew = self.check(model, table)
        scores = await self.batcher.score(model, table)
        ids = self.ids.take(table.n_rows)
        self.metrics.predictions.inc(table.n_rows)
        predictions = scores.predictions.tolist()
        probabilities = None if scores.probabilities is None else scores.probabilities.tolist()
        self.logger.log(
            Scored(
                model.name,
                model.version,
                time.time(),
                ids,
                table,
                predictions,
                probabilities,
                model.class_keys if model.classes is not None else None,
                (time.perf_counter() - started) * 1000,
                skew,
            )
        )
        return Outcome(
            model, ids, scores.predictions, scores.probabilities, predictions, probabilities
        )

    def feedback(self, prediction_id: str, label: Any) -> None:
        self.logger.log(Label(prediction_id, label, time.time()))

    # -- reporting -------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        model = self.slot.current
        return {
            "model": model.describe(),
            "served_as": str(self.ref),
            "signature": {"inputs": model.schema.describe(), "outputs": model.output_schema},
            "last_load_error": self.slot.last_load_error,
            "swaps": self.slot.swaps,
            "watch": None if self.watcher is None else self.watcher.status(),
            "prediction_log": self.logger.status(),
            "batching": {
                "max_wait_ms": self.settings.serve_batch_wait_ms,
                "max_rows": self.settings.serve_max_batch_rows,
            },
        }

    def refresh_gauges(self) -> None:
        status = self.logger.status()
        self.metrics.set_journal(status)
        self.metrics.swaps.set(self.slot.swaps)
        self.metrics.load_failures.set(self.slot.load_failures)

    def _batched(self, requests: int, rows: int) -> None:
        self.metrics.batch_rows.observe(rows)

    def _swapped(self, old: ServedModel, new: ServedModel) -> None:
        self.metrics.set_model(new.name, new.version)
        gc.freeze()  # the new model's objects join the frozen ones
