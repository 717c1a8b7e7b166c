"""Skew: how a batch differs from a reference profile, and how much difference counts.

The report types live apart from the profile so that whoever only reads
reports (the monitor, the prediction log) needs nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_KINDS: tuple[str, ...] = ("missing_column", "extra_column", "retyped_column")
VALUE_KINDS: tuple[str, ...] = (
    "out_of_range",
    "unseen_category",
    "null_rate_jump",
    "distribution_shift",
)
_EPSILON = 1e-4


class SkewThresholds(BaseModel):
    """How much difference from the reference counts as skew."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    null_rate_jump: float = Field(
        default=0.1, ge=0, le=1, description="Largest allowed rise in a column's share of nulls."
    )
    max_out_of_range_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest share of rows allowed outside the training [min, max] of a column.",
    )
    max_unseen_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest share of rows allowed to hold a category training never saw.",
    )
    distribution_psi: float = Field(
        default=0.25,
        gt=0,
        description="Population stability index above which a column's distribution shifted.",
    )
    min_rows_for_distribution: int = Field(
        default=100, ge=2, description="Smaller batches are not tested for distribution shift."
    )


@dataclass(frozen=True)
class SkewIssue:
    """One way a batch differs from the reference: ``what`` happened to ``column``."""

    column: str
    what: str
    expected: str
    found: str
    rate: float | None = None

    @property
    def message(self) -> str:
        return (
            f"column {self.column!r}: {self.what.replace('_', ' ')}; "
            f"expected {self.expected}, found {self.found}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "what": self.what,
            "expected": self.expected,
            "found": self.found,
            "rate": self.rate,
        }


@dataclass(frozen=True)
class SkewReport:
    """Every difference between one batch and the reference, schema first."""

    rows: int
    schema_issues: tuple[SkewIssue, ...] = ()
    value_issues: tuple[SkewIssue, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.schema_issues and not self.value_issues

    @property
    def has_schema_skew(self) -> bool:
        """True when the batch cannot be scored as is (serving answers 422)."""
        return bool(self.schema_issues)

    @property
    def issues(self) -> tuple[SkewIssue, ...]:
        return self.schema_issues + self.value_issues

    def kinds(self) -> dict[str, list[str]]:
        """``{what: [columns]}`` for a compact summary."""
        found: dict[str, list[str]] = {}
        for issue in self.issues:
            found.setdefault(issue.what, []).append(issue.column)
        return found

    def render(self) -> str:
        if self.ok:
            return f"no skew in {self.rows} rows"
        count = len(self.issues)
        lines = [f"{count} skew issue{'s' if count != 1 else ''} in {self.rows} rows:"]
        lines += [f"  - {issue.message}" for issue in self.issues]
        return "\n".join(lines)

    def raise_for_schema_skew(self, where: str = "the batch") -> None:
        """Raise :class:`SkewError` naming every schema issue, if there is any.

        Batch scoring calls this before scoring; value skew is only recorded.
        """
        if self.schema_issues:
            from loopml.core.errors import SkewError

            lines = "\n".join(f"  - {issue.message}" for issue in self.schema_issues)
            raise SkewError(
                f"{where} does not fit the model's reference profile "
                f"({len(self.schema_issues)} schema issue(s)):\n{lines}",
                self,
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "schema_issues": [issue.to_dict() for issue in self.schema_issues],
            "value_issues": [issue.to_dict() for issue in self.value_issues],
        }


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors (0 = same; > 0.25 = shifted)."""
    total = 0.0
    for want, got in zip(expected, actual, strict=True):
        e, a = max(float(want), _EPSILON), max(float(got), _EPSILON)
        total += (a - e) * math.log(a / e)
    return total
