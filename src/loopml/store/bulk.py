"""Bulk writes to the prediction log on PostgreSQL: COPY into a staging table, then insert.

Batch scoring and the journal shipper write hundreds to tens of thousands of
rows at a time; a multi-row ``INSERT`` costs more than the scoring itself.
``COPY`` is PostgreSQL's bulk path; staging through a temporary table keeps the
log's rule that a prediction id is written once (``ON CONFLICT DO NOTHING``),
so a redelivered batch or a re-shipped journal segment still adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from loopml.store.predictions import PredictionRecord

COLUMNS = (
    "id",
    "created_at",
    "model_name",
    "model_version",
    "source",
    "batch_id",
    "inputs",
    "outputs",
    "latency_ms",
    "skew",
)
_STAGE = "loopml_incoming_predictions"


def supports_copy(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def copy_predictions(
    connection: sa.Connection, records: Sequence[PredictionRecord], dumps: Callable[[Any], str]
) -> None:
    """Write ``records`` inside ``connection``'s transaction; ids already logged are skipped.

    COPY goes through the driver's cursor, below SQLAlchemy, so its errors are
    re-raised as SQLAlchemy's (``OperationalError`` for a store that is down,
    ``DataError`` for a value it refuses): callers tell the two apart by those
    classes, and a raw driver error would be neither (the journal shipper
    would retry a refused segment forever).
    """
    import psycopg

    try:
        _copy(connection, records, dumps)
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(
            f"COPY {_STAGE}", None, exc, psycopg.Error, dialect=connection.dialect
        ) from exc


def _copy(
    connection: sa.Connection, records: Sequence[PredictionRecord], dumps: Callable[[Any], str]
) -> None:
    names = ", ".join(COLUMNS)
    driver: Any = connection.connection.driver_connection
    with driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
            "(LIKE predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY {_STAGE} ({names}) FROM STDIN") as copy:
            for r in records:
                copy.write_row(
                    (
                        r.id,
                        r.created_at,
                        r.model_name,
                        r.model_version,
                        r.source,
                        r.batch_id,
                        dumps(r.inputs),
                        dumps(r.outputs),
                        r.latency_ms,
                        None if r.skew is None else dumps(r.skew),
                    )
                )
        cursor.execute(
            f"INSERT INTO predictions ({names}) SELECT {names} FROM {_STAGE} "
            "ON CONFLICT (id) DO NOTHING"
        )
