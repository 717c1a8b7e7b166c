"""Bulk writes to the prediction log on PostgreSQL: COPY into a staging table, then insert.

Batch scoring writes tens of thousands of rows at a time; row-by-row
``INSERT`` costs more than the scoring itself. ``COPY`` is PostgreSQL's bulk
path; staging through a temporary table keeps the log's rule that a
prediction id is written once (``ON CONFLICT DO NOTHING``), so a redelivered
batch still adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.engine import Engine

COLUMNS = (
    "id",
    "created_at",
    "model_name",
    "model_version",
    "source",
    "batch_id",
    "inputs",
    "outputs",
    "skew",
)
PredictionRow = tuple[str, datetime, str, str, str, str | None, str, str, str | None]
_STAGE = "loopml_incoming_predictions"


def supports_copy(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def copy_predictions(engine: Engine, rows: Iterable[PredictionRow]) -> None:
    """Write ``rows`` (inputs, outputs as JSON text) in one transaction; known ids are skipped."""
    names = ", ".join(COLUMNS)
    connection = engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
                "(LIKE predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cursor.copy(f"COPY {_STAGE} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO predictions ({names}) SELECT {names} FROM {_STAGE} "
                "ON CONFLICT (id) DO NOTHING"
            )
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
