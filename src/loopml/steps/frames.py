"""Small helpers every data step shares: reading a table and fingerprinting it."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from loopml.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.core.context import StepContext

FileFormat = Literal["csv", "parquet", "json", "zip"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "json", "zip")
_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".zip": "zip",
}


def infer_format(path: str) -> FileFormat:
    """The format a path's suffix names, or a clear error listing the ones we read."""
    suffix = PurePosixPath(path.split("?", 1)[0]).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    raise DataError(
        f"cannot tell the format of {path!r} from its suffix {suffix or '(none)'}; "
        f"name it with one of {', '.join(sorted(_SUFFIXES))} or set format: one of "
        f"{', '.join(FORMATS)}"
    )


def read_table(
    path: str,
    file_format: FileFormat,
    options: dict[str, Any],
    *,
    nrows: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read ``path`` (local or any fsspec URL) as one frame; ``nrows`` reads just a head.

    ``options`` come from a spec, so whatever pandas makes of them (an unknown
    keyword, a value of the wrong type, an iterator instead of a frame) is a
    DataError naming the file, never a crash of the process reading it.
    """
    import fsspec
    import pandas as pd

    options = dict(options)
    asked = options.pop("nrows", None)  # a head (a peek) is a head, whatever the spec asks
    nrows = asked if nrows is None else nrows
    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as handle:
            if file_format == "zip":
                frame = _read_zip(handle, path, options, nrows)
            elif file_format == "csv":
                frame = pd.read_csv(handle, nrows=nrows, **options)
            elif file_format == "parquet":
                frame = pd.read_parquet(handle, **options)
                frame = frame.head(nrows) if nrows is not None else frame
            else:
                lines = options.pop("lines", path.endswith(".jsonl"))
                frame = pd.read_json(handle, lines=lines, nrows=nrows if lines else None, **options)
    except FileNotFoundError as exc:
        raise DataError(f"data file {path!r} does not exist") from exc
    except (ValueError, OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path!r} as {file_format}: {exc}") from exc
    except (TypeError, AttributeError, KeyError, LookupError) as exc:
        raise DataError(
            f"cannot read {path!r} as {file_format} with read_options {sorted(options)}: "
            f"{exc}; read_options are keyword arguments of the pandas reader"
        ) from exc
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"read_options {sorted(options)} make the pandas reader return a "
            f"{type(frame).__name__}, not a table; drop chunksize/iterator/typ"
        )
    return frame


def _read_zip(handle: Any, path: str, options: dict[str, Any], nrows: int | None) -> pd.DataFrame:
    import pandas as pd

    payload = handle.read() if not hasattr(handle, "seek") else handle
    archive = zipfile.ZipFile(io.BytesIO(payload) if isinstance(payload, bytes) else payload)
    members = [
        info.filename
        for info in archive.infolist()
        if not info.is_dir() and not info.filename.startswith("__MACOSX/")
    ]
    tables = [name for name in members if name.lower().endswith(".csv")]
    if len(tables) != 1:
        raise DataError(
            f"{path!r} must hold exactly one CSV file; it holds "
            f"{', '.join(members) or 'nothing'}. Unzip it and point path at the CSV you want"
        )
    with archive.open(tables[0]) as member:
        frame: pd.DataFrame = pd.read_csv(member, nrows=nrows, **options)
    return frame


def fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 of the frame's columns, dtypes and values, independent of its index.

    Two runs with the same fingerprint trained on the same data, whatever file
    or query it came from.
    """
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr([(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def check_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Column names as strings (parquet and MLflow signatures need them), empty data refused."""
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise DataError(f"{source} holds no data ({frame.shape[0]} rows, {frame.shape[1]} columns)")
    if not all(isinstance(name, str) for name in frame.columns):
        frame.columns = [str(name) for name in frame.columns]
    return frame


def store_frame(context: StepContext, name: str, frame: pd.DataFrame, source: str) -> None:
    """Put a freshly loaded frame into the context with its fingerprint and origin."""
    frame = check_columns(frame, source)
    from loopml.core.context import LoadedData

    context.data[name] = frame
    context.loaded = LoadedData(
        frame=name,
        fingerprint=fingerprint(frame),
        source=source,
        shape=(int(frame.shape[0]), int(frame.shape[1])),
    )
