"""A file's columns against the model's signature, before anything is scored or logged.

A model without a reference profile used to meet a missing column deep in
scikit-learn, as a long traceback; this check names every missing and
mistyped column in one line, before the first row is scored.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from loopml.core.errors import InputError
from loopml.core.settings import Settings
from loopml.registry.tracking import use_tracking

_NUMERIC = {"double", "float", "long", "integer"}


def signature_columns(settings: Settings, name: str, version: str) -> dict[str, str]:
    """``{column: type}`` of the version's input signature (empty when it has none)."""
    mlflow = use_tracking(settings)
    try:
        info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    except Exception:  # no MLmodel to read: scoring will say why, this check has nothing to add
        return {}
    signature = info.signature
    if signature is None or signature.inputs is None:
        return {}
    columns: dict[str, str] = {}
    for spec in signature.inputs.inputs:
        if spec.name is not None:
            kind: Any = getattr(spec, "type", None)
            columns[str(spec.name)] = str(getattr(kind, "name", kind))
    return columns


def check_columns(
    frame: pd.DataFrame, expected: dict[str, str], where: str, *, quote_values: bool = True
) -> None:
    """Raise one :class:`InputError` naming every missing and every mistyped column.

    A mistyped column quotes its first bad value, unless ``quote_values`` is
    off: a remote client's job (``POST /batches``) learns no value of a file.
    """
    if not expected:
        return
    present = {str(column) for column in frame.columns}
    missing = [column for column in expected if column not in present]
    mistyped = []
    for column, kind in expected.items():
        if column in missing or kind not in _NUMERIC:
            continue
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() & values.notna()]
        if not bad.empty:
            got = f"got {str(bad.iloc[0])[:40]!r}" if quote_values else f"{len(bad)} such rows"
            mistyped.append(f"{column} ({kind}, {got})")
    if not missing and not mistyped:
        return
    found = []
    if missing:
        found.append(f"missing column(s) {', '.join(missing)}")
    if mistyped:
        found.append(f"non-numeric value(s) in {', '.join(mistyped)}")
    raise InputError(
        where,
        "; ".join(found),
        f"the model's columns: {', '.join(f'{c} ({k})' for c, k in expected.items())}",
    )
