"""Steps that load the training data from files and SQL databases.

Both check their parameters against the job's :class:`~loopml.core.access.DataPolicy`
before touching anything, at validation (``check_access``) and again when they
run: specs submitted over HTTP read files under the data roots only and reach
databases by configured name only. SQL runs as exactly one SELECT in a
read-only transaction (PostgreSQL, SQLite).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from loopml.core.access import DataPolicy, is_url
from loopml.core.context import StepContext, resolve_path
from loopml.core.errors import AccessError, DataError, MissingDataFileError
from loopml.core.validation import choice_error
from loopml.steps.base import StepParams, step
from loopml.steps.frames import FORMATS, FileFormat, infer_format, read_table, store_frame


class FileSource(StepParams):
    """A table in a file: CSV, Parquet, JSON (lines or records) or a zip holding one CSV."""

    path: str = Field(description="Local path (relative to the spec file) or fsspec URL.")
    format: FileFormat | None = Field(default=None, description="Overrides the suffix.")
    read_options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the pandas reader."
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "fsspec options for URLs (endpoint, region, anon...). Never credentials: the "
            "reading process takes them from its environment (AWS_ACCESS_KEY_ID...)."
        ),
    )
    frame: str = Field(default="train", description="Name the loaded frame gets.")

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in FORMATS:
            raise choice_error("file format", value, FORMATS)
        return value

    @field_validator("storage_options")
    @classmethod
    def _no_credentials(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = _credential_keys(value)
        if found:
            raise ValueError(
                f"{', '.join(found)}: credentials do not belong in a spec (specs are kept as "
                "plain text in the metadata store and in MLflow); give the processes that read "
                "the data AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a profile or role) in "
                "their environment"
            )
        return value

    @field_validator("path")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a file")
        return value


def _file_access(params: FileSource, base_dir: Path | None, policy: DataPolicy) -> None:
    """Refuse paths the policy does not allow; for HTTP specs also fsspec options."""
    policy.local_file(params.path, base_dir)
    if policy.restricted and params.storage_options:
        raise AccessError(
            "storage_options are not allowed in specs submitted over HTTP (they configure "
            "remote filesystems); read a local file under the data roots"
        )


_CREDENTIAL_WORDS = ("secret", "password", "token", "credential", "access_key", "account_key")


def _credential_keys(options: Any, prefix: str = "") -> list[str]:
    """Keys of ``options`` (at any depth) that name a credential, as dotted paths."""
    found: list[str] = []
    if isinstance(options, dict):
        for name, value in options.items():
            path = f"{prefix}{name}"
            lowered = str(name).lower()
            if lowered == "key" or any(word in lowered for word in _CREDENTIAL_WORDS):
                found.append(path)
            found.extend(_credential_keys(value, f"{path}."))
    return found


def _peek_file(params: FileSource, base_dir: Path) -> list[str] | None:
    """Column names from the file's head; ``None`` when it exists but cannot be read yet."""
    path = resolve_path(params.path, base_dir)
    if not is_url(path) and not Path(path).exists():
        raise MissingDataFileError(path, "path", base_dir)
    file_format = params.format or infer_format(path)
    try:
        head = read_table(
            path,
            file_format,
            dict(params.read_options),
            nrows=5,
            storage_options=params.storage_options,
        )
    except DataError:
        return None
    return [str(name) for name in head.columns]


LOADER_OUTPUTS = ("data/{frame}", "loaded")
"""What every loader writes: the frame under its name, and what was read."""


@step(
    "load_data_from_file",
    params=FileSource,
    peek_columns=_peek_file,
    check_access=_file_access,
    outputs=LOADER_OUTPUTS,
)
def load_data_from_file(context: StepContext, params: FileSource) -> None:
    """Load a CSV, Parquet, JSON or zipped-CSV file (local or fsspec URL)."""
    policy = DataPolicy.from_settings(context.settings)
    _file_access(params, context.base_dir, policy)
    path = policy.local_file(params.path, context.base_dir)
    file_format = params.format or infer_format(path)
    context.progress(f"reading {path}", 0, None)
    frame = read_table(
        path, file_format, dict(params.read_options), storage_options=params.storage_options
    )
    store_frame(context, params.frame, frame, path)


class SqlSource(StepParams):
    """The result of one query against a configured database (``source``) or a SQLAlchemy URL."""

    source: str | None = Field(
        default=None,
        description="Name of a database in LOOPML_DATA_SOURCES (its credentials stay there).",
    )
    url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; not allowed in specs "
            "submitted over HTTP."
        ),
    )
    query: str = Field(description="One SELECT statement, or a table name.")
    query_params: dict[str, Any] = Field(
        default_factory=dict, description="Bound parameters (:name) of the query."
    )
    frame: str = Field(default="train", description="Name the loaded frame gets.")

    @field_validator("query")
    @classmethod
    def _one_select(cls, value: str) -> str:
        single_select(_sql_text(value))
        return value

    @model_validator(mode="after")
    def _source_or_url(self) -> SqlSource:
        if (self.source is None) == (self.url is None):
            raise ValueError("give exactly one of `source` (a configured database) or `url`")
        return self


def single_select(sql: str) -> None:
    """Refuse anything but exactly one SELECT statement with balanced parentheses.

    The peek wraps the query as a subquery; a query that closes the wrapper's
    parenthesis or chains statements with ``;`` could otherwise run more than
    the one read the spec asked for.
    """
    import sqlparse
    from sqlparse import tokens

    statements = [item for item in sqlparse.parse(sql) if str(item).strip()]
    if len(statements) != 1:
        raise ValueError(f"must be exactly one SQL statement; found {len(statements)}")
    (statement,) = statements
    depth = 0
    for token in statement.flatten():  # type: ignore[no-untyped-call]
        if token.ttype is tokens.Punctuation and token.value == ";":
            raise ValueError("must be exactly one SQL statement; found ';' inside it")
        if token.ttype is tokens.Punctuation and token.value in "()":
            depth += 1 if token.value == "(" else -1
            if depth < 0:
                raise ValueError("has a ')' without its '(' ")
    if depth != 0:
        raise ValueError("has a '(' without its ')'")
    kind = statement.get_type()  # type: ignore[no-untyped-call]
    if kind != "SELECT":
        raise ValueError(
            f"must be a SELECT (or WITH ... SELECT) query or a table name; found {kind}"
        )


def _sql_text(query: str) -> str:
    stripped = query.strip().rstrip(";").strip()
    is_table = " " not in stripped and stripped.replace(".", "").replace("_", "").isalnum()
    return f"SELECT * FROM {stripped}" if is_table else stripped


def _sql_access(params: SqlSource, base_dir: Path | None, policy: DataPolicy) -> None:
    policy.sql_url(params.url, params.source)


def _engine(url: str) -> Any:
    import sqlalchemy as sa

    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        safe = _safe_url(url)
        raise DataError(f"cannot use SQL URL {safe}: {type(exc).__name__}") from exc


def _safe_url(url: str) -> str:
    from loopml.core.access import mask_secrets

    return mask_secrets(url) or ""


READ_ONLY_DIALECTS = ("postgresql", "sqlite")
_QUOTED = re.compile(r"\"[^\"]*(?:\"|$)|'[^']*(?:'|$)")


def without_values(message: str) -> str:
    """A database error with every quoted value hidden.

    Databases quote the offending value in their messages (PostgreSQL:
    ``invalid input syntax for type integer: "<value>"``), so a query that
    casts data it can read, ``pg_read_file('/etc/passwd')`` included, would
    hand that data to whoever reads the job's error. Specs submitted over HTTP
    get the message without them.
    """
    return _QUOTED.sub('"…"', message)


@contextmanager
def read_only(engine: Any, *, timeout_ms: int | None = None) -> Iterator[Any]:
    """A connection whose transaction cannot write (PostgreSQL, SQLite), rolled back at the end.

    Other databases get a plain connection; configure their sources with
    read-only credentials.
    """
    with engine.connect() as connection:
        dialect = engine.dialect.name
        if dialect == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            if timeout_ms is not None:
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        elif dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA query_only = ON")
        try:
            yield connection
        finally:
            connection.rollback()


def _peek_sql(params: SqlSource, base_dir: Path) -> list[str] | None:
    """The query's column names from a zero-row read, in a read-only transaction.

    Databases that cannot be made read-only here are not peeked at.
    """
    import sqlalchemy as sa

    if params.source is not None:
        return None  # named sources are the worker's; validating on another machine cannot see them
    assert params.url is not None
    engine = _engine(params.url)
    if engine.dialect.name not in READ_ONLY_DIALECTS:
        engine.dispose()
        return None
    wrapped = f"SELECT * FROM (\n{_sql_text(params.query)}\n) AS loopml_peek LIMIT 0"
    try:
        single_select(wrapped)
        with read_only(engine, timeout_ms=15_000) as connection:
            result = connection.execute(sa.text(wrapped), params.query_params)
            return list(result.keys())
    except (sa.exc.SQLAlchemyError, ValueError):
        return None
    finally:
        engine.dispose()


@step(
    "load_data_from_sql",
    params=SqlSource,
    peek_columns=_peek_sql,
    check_access=_sql_access,
    outputs=LOADER_OUTPUTS,
)
def load_data_from_sql(context: StepContext, params: SqlSource) -> None:
    """Load the result of one SELECT (any database SQLAlchemy speaks), read-only where possible."""
    import pandas as pd
    import sqlalchemy as sa

    policy = DataPolicy.from_settings(context.settings)
    url = policy.sql_url(params.url, params.source)
    engine = _engine(url)
    safe_url = params.source or engine.url.render_as_string(hide_password=True)
    context.progress(f"querying {safe_url}", 0, None)
    try:
        with read_only(engine) as connection:
            frame = pd.read_sql_query(
                sa.text(_sql_text(params.query)), connection, params=params.query_params
            )
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) else exc
        first_line = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        if policy.restricted:
            first_line = without_values(first_line)
        raise DataError(f"query against {safe_url} failed: {first_line}") from exc
    finally:
        engine.dispose()
    store_frame(context, params.frame, frame, safe_url)
