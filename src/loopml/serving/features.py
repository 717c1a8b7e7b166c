"""Online features at serving: entity-only requests joined with Feast's online store.

A version trained by ``load_data_from_feature_store`` carries a
:class:`~loopml.features.FeatureBinding`. Serving it, :func:`attach` swaps the
request schema every protocol parses with for one of the entity keys, the
request-time columns and (optional) the features the spec lets a request override;
:meth:`OnlineFeatures.join` then looks the stored features up and builds the rows in
the model's column order, which the usual path checks, scores and journals (with the
entity keys, see :class:`JoinedTable`).

Lookups run on their own thread, never on the event loop, and are coalesced: while one
``get_online_features`` call runs, every request that arrives queues, and the next call
fetches all of their keys at once, so the lookup batches the way predict does.

An entity the online store does not hold is the request's fault: an
:class:`~loopml.core.errors.InputError` naming the key and value (422), never a 5xx.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.core.errors import InputError, LoopmlError, ModelLoadError
from loopml.core.settings import Settings
from loopml.features.binding import FeatureBinding
from loopml.serving.table import Column, InputSchema, Table

log = logging.getLogger(__name__)

_KINDS = {"Int64": "long", "Int32": "integer", "String": "string"}
MISSING_EXPECTED = "an entity the online store holds (trained on and materialized)"


class FeatureStoreDownError(LoopmlError):
    """The online store could not be read: the server's problem (503), not the request's."""


@dataclass
class JoinedTable(Table):
    """Model rows that also carry their entity keys, which the prediction log records."""

    keys: tuple[str, ...] = field(default=())

    def records(self) -> list[dict[str, Any]]:
        rows = super().records()
        values = self.column_values()
        for name in self.keys:
            column = values[name]
            listed = column.tolist() if isinstance(column, np.ndarray) else list(column)
            for row, value in zip(rows, listed, strict=True):
                row[name] = value
        return rows


@dataclass
class _Lookup:
    keys: dict[str, list[Any]]
    future: asyncio.Future[tuple[dict[str, list[Any]], list[bool]]]


class OnlineFeatures:
    """One served version's feature binding, its Feast store and the coalescing lookup."""

    def __init__(self, binding: FeatureBinding, store: Any, model_schema: InputSchema) -> None:
        self.binding = binding
        self.store = store
        self.model_schema = model_schema
        self.feature_columns = dict(zip(binding.feature_columns, binding.features, strict=True))
        self.request_schema = self._request_schema()
        self._pending: list[_Lookup] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopml-features")
        self.lookups = 0

    def _request_schema(self) -> InputSchema:
        kinds = {}
        for view in self.store.list_feature_views():
            for column in view.entity_columns:
                kinds[column.name] = _KINDS.get(str(column.dtype), "string")
        columns = [Column(key, kinds.get(key, "string")) for key in self.binding.entity_keys]
        for column in self.model_schema.columns:
            if column.name not in self.feature_columns:
                columns.append(column)  # a request-time feature: the request sends it
            elif self.binding.may_override(column.name):
                # optional, so nullable: integers are checked against the model's type
                # after the join (a null means "use the stored value")
                kind = "double" if column.kind in {"long", "integer"} else column.kind
                columns.append(Column(column.name, kind, required=False))
        return InputSchema(columns)

    def describe(self) -> dict[str, Any]:
        return {
            "repo": self.binding.repo,
            "features": list(self.binding.features),
            "entity_keys": list(self.binding.entity_keys),
            "allow_override": list(self.binding.allow_override),
            "lookups": self.lookups,
        }

    # -- the request path ----------------------------------------------------------------------

    async def join(self, table: Table) -> JoinedTable:
        """``table`` (entity keys and request-time columns) with its stored features."""
        sent = table.column_values()
        keys = {key: _plain(sent[key]) for key in self.binding.entity_keys}
        stored, found = await self._lookup(keys)
        for i, present in enumerate(found):
            if not present:
                entity = ", ".join(f"{key}={keys[key][i]!r}" for key in keys)
                raise InputError(
                    f"rows[{i}].{self.binding.entity_keys[0]}",
                    f"no stored features for {entity} in the online store",
                    MISSING_EXPECTED,
                )
        columns: dict[str, Any] = {}
        for name in self.model_schema.names:
            if name not in self.feature_columns:
                columns[name] = _plain(sent[name])
                continue
            values = stored[name]
            if name in sent and self.binding.may_override(name):
                kind = self.model_schema.by_name[name].kind
                override = [_as(kind, v) for v in _plain(sent[name])]
                values = [s if v is None else v for v, s in zip(override, values, strict=True)]
            columns[name] = values
        checked = self.model_schema.from_columns(columns, where="features")
        model_columns = dict(checked.column_values())
        for key in keys:
            model_columns[key] = keys[key]
        return JoinedTable(
            self.model_schema.names, table.n_rows, columns=model_columns, keys=tuple(keys)
        )

    async def _lookup(self, keys: dict[str, list[Any]]) -> tuple[dict[str, list[Any]], list[bool]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[dict[str, list[Any]], list[bool]]] = loop.create_future()
        self._pending.append(_Lookup(keys, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await asyncio.sleep(0)  # requests arriving together join this call
                batch, self._pending = self._pending, []
                merged = {
                    key: [value for job in batch for value in job.keys[key]]
                    for key in self.binding.entity_keys
                }
                try:
                    stored, found = await loop.run_in_executor(self._executor, self.fetch, merged)
                except Exception as exc:
                    log.exception("online feature lookup failed")
                    down = FeatureStoreDownError(
                        f"the online feature store could not be read "
                        f"({type(exc).__name__}: {exc}); retry later"
                    )
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(down)
                    continue
                start = 0
                for job in batch:
                    end = start + len(next(iter(job.keys.values())))
                    part = {name: values[start:end] for name, values in stored.items()}
                    if not job.future.done():
                        job.future.set_result((part, found[start:end]))
                    start = end
        finally:
            self._draining = False

    def fetch(self, keys: dict[str, list[Any]]) -> tuple[dict[str, list[Any]], list[bool]]:
        """Stored values per feature column for ``keys`` and, per row, whether it was found."""
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        self.lookups += 1
        response = self.store.get_online_features(
            features=list(self.binding.features), entity_rows=keys
        )
        values = response.to_dict()
        names = list(response.proto.metadata.feature_names.val)
        rows = len(next(iter(keys.values())))
        found = [False] * rows
        for j, name in enumerate(names):
            if name in keys:
                continue
            for i, status in enumerate(response.proto.results[j].statuses):
                if status != FieldStatus.NOT_FOUND:
                    found[i] = True
        return {name: list(values[name]) for name in self.feature_columns}, found

    def close(self) -> None:
        self._executor.shutdown(wait=False)


def _as(kind: str, value: Any) -> Any:
    """An override sent as a number, back to the model's integer type when it is whole."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if kind in {"long", "integer"} and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _plain(column: Any) -> list[Any]:
    return column.tolist() if isinstance(column, np.ndarray) else list(column)


def attach(settings: Settings, served: Any) -> None:
    """Bind ``served`` to its feature store when its version was trained from one.

    Replaces the schema requests are parsed with (entity keys instead of stored
    features); the model's own signature moves to ``served.features.model_schema``.
    """
    from loopml.registry.models import get_version

    tags = get_version(settings, served.name, served.version).tags
    binding = FeatureBinding.from_tags(tags)
    if binding is None:
        return
    from loopml.features import open_store

    repo = settings.feature_repo or binding.repo
    try:
        store = open_store(repo)
    except Exception as exc:
        raise ModelLoadError(
            f"{served.uri} was trained from the Feast repo {repo} and cannot serve without it: "
            f"{exc}"
        ) from exc
    online = OnlineFeatures(binding, store, served.schema)
    served.features = online
    served.schema = online.request_schema
