"""Checking each scoring request against the served version's reference profile.

Schema skew (a column the training data did not have, or values of another
kind than it had) means the model would score something it never saw the
shape of: the request is refused with a 422 naming the column. Value skew
(out-of-range numbers, unseen categories, nulls) is the world drifting, not
the client's mistake: the request is served and the skew is recorded on its
predictions in the prediction log, where the monitor reads it.
"""

from __future__ import annotations

from typing import Any

from loopml.core.checker import ProfileChecker
from loopml.core.errors import InputError
from loopml.core.skew import SkewIssue, SkewReport
from loopml.serving.table import Table
from loopml.store.predictions import value_skew

_FEW_ROWS = 10
"""Up to this many rows, per-value lookups beat one numpy call per column."""


def profile_skew(checker: ProfileChecker, table: Table) -> dict[str, Any] | None:
    """The request's value skew to log (None when there is none); InputError on schema skew.

    A few rows of all-number inputs go through ``check_records`` (plain
    lookups, tens of microseconds); larger requests and typed columns
    (strings, date-times) through ``check_arrays``, vectorised per numeric
    column. Neither builds a frame or tests distributions: one request is no
    sample of a distribution (the monitor tests windows of the log).
    """
    extra = [name for name in table.extra if name != checker.target]
    report = _report(checker, table)
    issues = [_extra(name) for name in extra] + list(report.schema_issues)
    if issues:
        raise _refusal(checker, issues)
    return value_skew(report)


def _report(checker: ProfileChecker, table: Table) -> SkewReport:
    if table.n_rows <= _FEW_ROWS and table.columns is None:
        return checker.check_records(table.records())
    return checker.check_arrays(table.column_values(), table.n_rows)


def _extra(name: str) -> SkewIssue:
    return SkewIssue(name, "extra_column", "no such column", "a column")


def _refusal(checker: ProfileChecker, issues: list[SkewIssue]) -> InputError:
    """One 422 naming every schema issue, the first column as the field."""
    described = []
    for issue in issues:
        if issue.what == "extra_column":
            described.append(
                f"column {issue.column!r} is not one the model was trained on (extra column)"
            )
        else:
            described.append(issue.message)
    names = sorted(checker.names)
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return InputError(
        issues[0].column,
        "schema skew against the model's reference profile: " + "; ".join(described),
        f"only the training columns ({shown}) with their training types",
    )
