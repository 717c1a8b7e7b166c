"""Reading the rows to score (CSV or Parquet) and writing the scored file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from loopml.core.errors import DataError

FORMATS = (".csv", ".parquet", ".pq")


def _format(path: Path, role: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"{role} file {path}: unsupported format {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return "csv" if suffix == ".csv" else "parquet"


def read_table(path: Path) -> pd.DataFrame:
    """The whole input file as a frame (CSV or Parquet, by suffix)."""
    kind = _format(path, "input")
    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    try:
        return pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"input file {path}: cannot read it as {kind}: {exc}") from exc


def check_output(path: Path) -> None:
    """Fail before any scoring when the output file could not be written."""
    _format(path, "output")
    if not path.parent.exists():
        raise DataError(f"output file {path}: folder {path.parent} does not exist")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    if _format(path, "output") == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def chunks(frame: pd.DataFrame, rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(number, chunk)`` pairs of at most ``rows`` rows, in file order."""
    if rows < 1:
        raise DataError(f"batch size must be at least 1, got {rows}")
    for number, start in enumerate(range(0, len(frame), rows)):
        yield number, frame.iloc[start : start + rows]
