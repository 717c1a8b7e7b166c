"""Reference profiles and skew checks: every kind of skew named in one report, fast path agrees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.core.checker import check_batch, check_records, checker_for
from loopml.core.errors import SkewError
from loopml.core.profile import (
    ReferenceProfile,
    SkewThresholds,
    build_profile,
)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, rows),
            "age": rng.integers(18, 90, rows),
            "score": rng.normal(0, 1, rows),
            "balance": rng.normal(100, 10, rows),
            "income": rng.normal(50, 5, rows),
            "segment": rng.choice(["retail", "business", "private"], rows),
            "channel": rng.choice(["web", "app"], rows),
            "label": rng.integers(0, 2, rows),
        }
    )


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return build_profile(_frame(3000, seed=1), target="label")


def _found(report: object) -> set[tuple[str, str]]:
    return {(issue.column, issue.what) for issue in report.issues}  # type: ignore[attr-defined]


def test_profile_describes_the_training_data(profile: ReferenceProfile) -> None:
    assert profile.target == "label" and profile.rows == 3000
    assert profile.column_names == [
        "amount",
        "age",
        "score",
        "balance",
        "income",
        "segment",
        "channel",
    ]
    age = profile.column("age")
    assert age.kind == "numeric" and 18 <= age.minimum <= age.maximum <= 89  # type: ignore[operator]
    assert set(profile.column("segment").categories or {}) == {"retail", "business", "private"}
    assert profile.column("score").quantiles["0.5"] == pytest.approx(0, abs=0.1)
    assert profile.target_column is not None and profile.target_column.name == "label"
    again = ReferenceProfile.from_json(profile.to_json())
    assert again.model_dump() == profile.model_dump()


def test_a_fresh_batch_from_the_same_source_is_clean(profile: ReferenceProfile) -> None:
    report = check_batch(profile, _frame(2000, seed=2))
    assert report.ok, report.render()
    without_target = _frame(2000, seed=3).drop(columns=["label"])
    assert check_batch(profile, without_target).ok


def test_every_kind_of_skew_is_caught_and_named_in_one_report(profile: ReferenceProfile) -> None:
    batch = _frame(2000, seed=4)
    reference = _frame(3000, seed=1)
    batch = batch.drop(columns=["channel"])  # missing column
    batch["coupon"] = 1.0  # extra column
    batch["age"] = batch["age"].astype(str) + " years"  # retyped column
    batch.loc[:199, "amount"] = reference["amount"].max() * 10  # out of range
    batch.loc[:99, "segment"] = "government"  # unseen category
    batch.loc[:599, "balance"] = np.nan  # null-rate jump
    shifted = batch["score"] + 1.5
    batch["score"] = shifted.clip(reference["score"].min(), reference["score"].max())  # shift

    report = check_batch(profile, batch)

    assert _found(report) == {
        ("channel", "missing_column"),
        ("coupon", "extra_column"),
        ("age", "retyped_column"),
        ("amount", "out_of_range"),
        ("segment", "unseen_category"),
        ("balance", "null_rate_jump"),
        ("score", "distribution_shift"),
    }
    assert {i.column for i in report.schema_issues} == {"channel", "coupon", "age"}
    assert report.has_schema_skew
    text = report.render()
    assert "7 skew issues in 2000 rows" in text
    assert "'government'" in text and "30.0% nulls" in text
    assert report.to_dict()["schema_issues"][0]["what"] == "missing_column"
    with pytest.raises(SkewError, match="3 schema issue") as caught:
        report.raise_for_schema_skew("the scoring batch")
    assert caught.value.report is report and "'coupon': extra column" in str(caught.value)
    check_batch(profile, _frame(500, seed=9)).raise_for_schema_skew()  # clean: no error


def test_thresholds_decide_what_counts(profile: ReferenceProfile) -> None:
    batch = _frame(2000, seed=5)
    batch.loc[:9, "segment"] = "government"  # 0.5 % of rows
    assert check_batch(profile, batch).ok  # under the default 1 %
    strict = SkewThresholds(max_unseen_rate=0.0)
    assert _found(check_batch(profile, batch, strict)) == {("segment", "unseen_category")}
    small = _frame(50, seed=6)
    small["score"] = small["score"].clip(lower=0.5)  # shifted, but too few rows to say
    assert check_batch(profile, small).ok


def test_single_records_take_the_fast_path_and_agree_with_frames(
    profile: ReferenceProfile,
) -> None:
    row = _frame(1, seed=7).drop(columns=["label"]).iloc[0].to_dict()
    row = {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
    assert check_records(profile, [row]).ok

    bad = dict(row, segment="government", amount=1e9, balance=None, coupon=3)
    del bad["channel"]
    bad["income"] = "fifty"
    expected = {
        ("channel", "missing_column"),
        ("coupon", "extra_column"),
        ("income", "retyped_column"),
        ("segment", "unseen_category"),
        ("amount", "out_of_range"),
        ("balance", "null_rate_jump"),
    }
    fast = check_records(profile, [bad])
    assert _found(fast) == expected
    assert _found(check_batch(profile, pd.DataFrame([bad]))) == expected
    assert _found(checker_for(profile).check_columns(pd.DataFrame([bad]))) == expected  # vectorised
    checker = checker_for(profile)
    assert checker_for(profile) is checker  # compiled once per profile


def test_parsed_request_columns_agree_with_records(profile: ReferenceProfile) -> None:
    """check_arrays (serving's multi-row path: numpy columns, no pandas) finds the same skew."""
    frame = _frame(40, seed=9).drop(columns=["label"])
    frame.loc[:9, "amount"] = 1e9
    frame.loc[:19, "balance"] = np.nan
    frame.loc[:4, "segment"] = "government"
    checker = checker_for(profile)
    columns = {name: frame[name].to_numpy() for name in frame.columns if name != "channel"}
    arrays = checker.check_arrays(columns, len(frame), extra=["coupon", "label"])
    expected = {
        ("channel", "missing_column"),
        ("coupon", "extra_column"),
        ("segment", "unseen_category"),
        ("amount", "out_of_range"),
        ("balance", "null_rate_jump"),
    }
    assert _found(arrays) == expected
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.drop(columns=["channel"]).assign(coupon=1).to_dict("records")
    ]
    assert _found(checker.check_records(records)) == expected
    retyped = checker.check_arrays({**columns, "income": np.array(["fifty"] * 40)}, 40)
    assert ("income", "retyped_column") in _found(retyped)
    assert (
        checker.check_arrays(
            {name: frame[name].to_numpy() for name in frame.columns}, 40
        ).schema_issues
        == ()
    )


def test_empty_frames_cannot_be_profiled() -> None:
    with pytest.raises(ValueError, match="empty"):
        build_profile(pd.DataFrame({"a": []}))


def test_json_friendly_kinds_are_not_retyped() -> None:
    training = pd.DataFrame(
        {
            "opened": pd.date_range("2026-01-01", periods=200, freq="D"),
            "plan": np.tile(["1", "2"], 100),
            "price": np.linspace(1, 2, 200),
        }
    )
    profile = build_profile(training)
    assert profile.column("opened").kind == "datetime"
    ok = {"opened": "2026-03-01T10:00:00", "plan": 2, "price": 1}  # ISO text, code, int
    assert check_records(profile, [ok]).ok
    bad = {"opened": 17, "plan": "1", "price": True}
    assert _found(check_records(profile, [bad])) == {
        ("opened", "retyped_column"),
        ("price", "retyped_column"),
    }


def test_the_profile_modules_stay_out_of_the_scikit_learn_world() -> None:
    """Serving imports these on its hot path; they may need only pandas, numpy and pydantic."""
    import subprocess
    import sys

    probe = (
        "import sys, loopml.core.profile, loopml.core.checker, loopml.core.skew\n"
        "print(','.join(m for m in ('sklearn', 'mlflow', 'scipy', 'loopml.automl') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
