"""Steps that load the training data from files and SQL databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from loopml.core.context import StepContext, resolve_path
from loopml.core.errors import DataError
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
    """Column names from the file's head, or ``None`` when the file cannot be read yet."""
    path = resolve_path(params.path, base_dir)
    if "://" not in path and not Path(path).exists():
        return None
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


@step("load_data_from_file", params=FileSource, peek_columns=_peek_file)
def load_data_from_file(context: StepContext, params: FileSource) -> None:
    """Load a CSV, Parquet, JSON or zipped-CSV file (local or fsspec URL)."""
    path = context.resolve_path(params.path)
    file_format = params.format or infer_format(path)
    context.progress(f"reading {path}", 0, None)
    frame = read_table(
        path, file_format, dict(params.read_options), storage_options=params.storage_options
    )
    store_frame(context, params.frame, frame, path)


class SqlSource(StepParams):
    """The result of one query against any SQLAlchemy URL."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db.")
    query: str = Field(description="A SELECT statement, or a table name.")
    query_params: dict[str, Any] = Field(
        default_factory=dict, description="Bound parameters (:name) of the query."
    )
    frame: str = Field(default="train", description="Name the loaded frame gets.")


def _sql_text(query: str) -> str:
    stripped = query.strip().rstrip(";")
    is_table = " " not in stripped and stripped.replace(".", "").replace("_", "").isalnum()
    return f"SELECT * FROM {stripped}" if is_table else stripped


def _engine(url: str) -> Any:
    import sqlalchemy as sa

    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise DataError(f"cannot use SQL URL {url!r}: {exc}") from exc


def _peek_sql(params: SqlSource, base_dir: Path) -> list[str] | None:
    import sqlalchemy as sa

    engine = _engine(params.url)
    try:
        with engine.connect() as connection:
            wrapped = f"SELECT * FROM ({_sql_text(params.query)}) AS loopml_peek LIMIT 0"
            result = connection.execute(sa.text(wrapped), params.query_params)
            return list(result.keys())
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


@step("load_data_from_sql", params=SqlSource, peek_columns=_peek_sql)
def load_data_from_sql(context: StepContext, params: SqlSource) -> None:
    """Load the result of a SQL query (any database SQLAlchemy speaks)."""
    import pandas as pd
    import sqlalchemy as sa

    engine = _engine(params.url)
    safe_url = engine.url.render_as_string(hide_password=True)
    context.progress(f"querying {safe_url}", 0, None)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql_query(
                sa.text(_sql_text(params.query)), connection, params=params.query_params
            )
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) else exc
        first_line = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        raise DataError(f"query against {safe_url} failed: {first_line}") from exc
    finally:
        engine.dispose()
    store_frame(context, params.frame, frame, safe_url)
