"""Reading the rows to score (CSV or Parquet) in chunks, and writing the scored file.

Engines stream: a chunk is read, scored, logged and appended to the output,
so memory stays flat however many rows the file has. Paths may be local or
any URI pyarrow's filesystems open (``s3://``). The scored file is written
under a temp name and renamed when complete (locally); on S3 the upload
completes only when the writer closes, so a failed job leaves no output.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from loopml.core.errors import DataError, InputFileError

FORMATS = (".csv", ".parquet", ".pq")
"""What every engine streams (local, queue, by reference, Spark): so the one list for all."""

_HINTS = {
    ".zip": "unzip it and give the CSV inside",
    ".gz": "decompress it and give the CSV",
    ".json": "convert it to CSV or Parquet first, e.g. with pandas read_json and to_parquet",
    ".jsonl": "convert it to CSV or Parquet first, e.g. with pandas read_json(lines=True)",
    ".xlsx": "save it as CSV first",
}


def _format(path: str | Path, role: str) -> str:
    suffix = Path(str(path)).suffix.lower()
    if suffix not in FORMATS:
        hint = _HINTS.get(suffix, "save it as CSV or Parquet")
        raise InputFileError(
            f"{role} file {path}: unsupported format {suffix or '(no suffix)'!r}; "
            f"loopml reads and writes {', '.join(FORMATS)} here ({hint})"
        )
    return "csv" if suffix == ".csv" else "parquet"


def _shown(path: str | Path) -> str:
    """``path`` and, when it is relative, where that is: the message says where it looked."""
    text = str(path)
    if is_remote(text) or Path(text).is_absolute():
        return text
    return f"{text} ({Path(text).resolve()})"


def is_remote(path: str | Path) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def _filesystem(path: str | Path) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    text = str(path)
    if "://" in text:
        filesystem, location = pafs.FileSystem.from_uri(text)
        return filesystem, str(location)
    return pafs.LocalFileSystem(), str(Path(text).resolve())


def check_input(path: str | Path, *, folders: bool = False, role: str = "input") -> None:
    """Fail before any scoring when the input cannot be read: missing, a folder, empty.

    ``folders`` lets a folder through (Spark reads a folder of part files, such as
    the output of an earlier Spark job); its format is then not checked here.
    """
    import pyarrow.fs as pafs

    if not str(path).strip():  # "" would resolve to the working folder
        raise InputFileError(f"{role} file name is empty; give one {', '.join(FORMATS)} file")
    filesystem, location = _filesystem(path)
    try:
        info = filesystem.get_file_info(location)
    except OSError as exc:
        raise InputFileError(f"{role} file {path}: cannot reach it: {exc}") from exc
    if info.type == pafs.FileType.NotFound:
        raise InputFileError(f"{role} file {_shown(path)} does not exist")
    if info.type == pafs.FileType.Directory:
        if folders:
            return
        raise InputFileError(f"{role} file {path} is a folder; give one {', '.join(FORMATS)} file")
    _format(path, role)
    if info.size == 0:
        raise InputFileError(
            f"{role} file {path} is empty (0 bytes); give a file with a header row and rows"
        )


def check_output(
    path: str | Path, *, overwrite: bool = True, folders: bool = False, role: str = "output"
) -> None:
    """Fail before any scoring when the output file could not be written.

    ``overwrite=False`` refuses an existing output (the CLI's default: a scored
    file may be the only copy of an earlier batch); ``folders`` lets an existing
    folder be the output (Spark writes a folder).
    """
    if not str(path).strip():
        raise InputFileError(f"{role} file name is empty; give a name such as scored.csv")
    if is_remote(path):
        _format(path, role)
        return
    target = Path(str(path))
    if target.is_dir() and not folders:
        raise InputFileError(
            f"{role} file {path} is a folder; give a file name such as {target / 'scored.csv'}"
        )
    _format(path, role)
    parent = target.parent
    if not parent.exists():
        raise InputFileError(f"{role} file {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise InputFileError(f"{role} file {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputFileError(f"{role} file {path}: folder {parent} is not writable")
    if target.exists() and not overwrite:
        raise InputFileError(
            f"{role} file {path} exists; pass --overwrite to replace it, or choose another name"
        )


def read_table(path: str | Path) -> pd.DataFrame:
    """The whole input file as a frame (small files and tests; engines stream)."""
    parts = [chunk for _, chunk in iter_chunks(path, 1_000_000)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def iter_chunks(path: str | Path, rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(number, chunk)`` pairs of exactly ``rows`` rows (the last fewer), in file order.

    Chunk boundaries depend only on ``rows``, never on the file's row groups,
    so every engine numbers the same rows the same way (and so gives them the
    same prediction ids for the same job).
    """
    if rows < 1:
        raise DataError(f"batch size must be at least 1, got {rows}")
    check_input(path)
    kind = _format(path, "input")
    filesystem, location = _filesystem(path)
    try:
        if kind == "csv":
            with filesystem.open_input_stream(location) as stream:
                reader = pd.read_csv(stream, chunksize=rows)
                for number, chunk in enumerate(reader):
                    yield number, chunk.reset_index(drop=True)
            return
        yield from _parquet_chunks(filesystem, location, rows)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"input file {path}: cannot read it as {kind}: {exc}") from exc


def _parquet_chunks(
    filesystem: Any, location: str, rows: int
) -> Iterator[tuple[int, pd.DataFrame]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with filesystem.open_input_file(location) as handle:
        parquet = pq.ParquetFile(handle)
        held: list[pa.RecordBatch] = []
        count = 0
        number = 0
        for batch in parquet.iter_batches(batch_size=rows):
            held.append(batch)
            count += batch.num_rows
            while count >= rows:
                table = pa.Table.from_batches(held)
                yield number, table.slice(0, rows).to_pandas()
                number += 1
                rest = table.slice(rows)
                held = rest.to_batches()
                count = rest.num_rows
        if count:
            yield number, pa.Table.from_batches(held).to_pandas()


def read_range(path: str | Path, start: int, rows: int) -> pd.DataFrame:
    """Rows ``start`` .. ``start + rows - 1`` of a Parquet file, reading only their row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if _format(path, "input") != "parquet":
        raise DataError(f"input file {path}: a row range is read from Parquet only")
    filesystem, location = _filesystem(path)
    try:
        with filesystem.open_input_file(location) as handle:
            parquet = pq.ParquetFile(handle)
            metadata = parquet.metadata
            groups, first, offset = [], None, 0
            for group in range(metadata.num_row_groups):
                size = metadata.row_group(group).num_rows
                if offset + size > start and offset < start + rows:
                    groups.append(group)
                    first = offset if first is None else first
                offset += size
            if first is None:
                raise DataError(f"input file {path} has {offset} rows; none from row {start}")
            table: pa.Table = parquet.read_row_groups(groups)
    except OSError as exc:
        raise DataError(f"input file {path}: cannot read rows {start}+{rows}: {exc}") from exc
    sliced: pd.DataFrame = table.slice(start - first, rows).to_pandas()
    return sliced


def chunks(frame: pd.DataFrame, rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(number, chunk)`` pairs of at most ``rows`` rows of a frame in memory, in order."""
    if rows < 1:
        raise DataError(f"batch size must be at least 1, got {rows}")
    for number, start in enumerate(range(0, len(frame), rows)):
        yield number, frame.iloc[start : start + rows]


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    with ScoredWriter(path) as writer:
        writer.append(frame)


class ScoredWriter:
    """Appends scored chunks to the output; the file appears whole on success, never half."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.kind = _format(path, "output")
        self.rows = 0
        self._filesystem, self._location = _filesystem(path)
        self._remote = is_remote(path)
        self._temp = (
            self._location
            if self._remote
            else str(
                Path(self._location).with_name(
                    f".{Path(self._location).name}.{uuid.uuid4().hex[:8]}.tmp"
                )
            )
        )
        self._stream: Any = None
        self._parquet: Any = None

    def __enter__(self) -> ScoredWriter:
        try:
            self._stream = self._filesystem.open_output_stream(self._temp)
        except OSError as exc:
            raise InputFileError(f"output file {self.path}: cannot write it: {exc}") from exc
        except BaseException:  # Ctrl-C as the file is created: __exit__ will not run
            if not self._remote:
                Path(self._temp).unlink(missing_ok=True)
            raise
        return self

    def append(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.kind == "csv":
            text = frame.to_csv(index=False, header=self.rows == 0)
            self._stream.write(text.encode())
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                # no dictionaries: scores and inputs are mostly distinct floats, and
                # dictionary-encoding them cost more than scoring them
                self._parquet = pq.ParquetWriter(self._stream, table.schema, use_dictionary=False)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self.rows += len(frame)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self.kind == "parquet" and self._parquet is None and error is None:
            import pyarrow.parquet as pq

            pq.ParquetWriter(self._stream, _empty_schema()).close()
        self._stream.close()
        if self._remote:
            if error is not None:
                self._filesystem.delete_file(self._location)
            return
        if error is None:
            try:
                Path(self._temp).replace(self._location)
            except OSError as exc:  # a folder took the name meanwhile, a read-only mount
                Path(self._temp).unlink(missing_ok=True)
                raise InputFileError(f"output file {self.path}: cannot write it: {exc}") from exc
        else:
            Path(self._temp).unlink(missing_ok=True)


def _empty_schema() -> Any:
    import pyarrow as pa

    return pa.schema([])
