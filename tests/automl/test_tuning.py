"""Tuning in one process: each search library and algorithm, pruning, the fallback, records."""

from __future__ import annotations

from typing import Any

from tests.automl.frames import classification, raw, run


def _tuned(tune: dict[str, Any], estimator: str = "dt") -> tuple[Any, Any, list[str]]:
    said: list[str] = []
    result = run(
        classification(160),
        "classification",
        "AUC",
        raw(estimator_list=[estimator], tune=tune),
        say=said.append,
    )
    (report,) = [c.tuning for c in result.candidates if c.tuning is not None]
    return result, report, said


def test_distributed_without_postgresql_runs_threads_on_a_journal_study_and_says_so() -> None:
    result, report, said = _tuned({"n_iter": 5, "distributed": True, "choose_better": False})
    assert report.storage.startswith("journal file")
    assert len([t for t in report.trials if t.state in ("COMPLETE", "PRUNED")]) >= 5
    assert any("journal file study instead" in line for line in said), said
    tuned = result.candidate("dt_tuned")
    best = min(report.completed, key=lambda t: (-(t.value or 0.0), t.number))
    assert all(tuned.params[k] == v for k, v in best.params.items())
    assert set(report.figures) == {"optimization_history", "param_importances"}


def test_scikit_learn_grid_searches_the_grid_it_was_given() -> None:
    grid = {"max_depth": [2, 3, 4], "min_samples_leaf": [1, 5]}
    _, report, _ = _tuned(
        {
            "n_iter": 50,
            "search_library": "scikit-learn",
            "search_algorithm": "grid",
            "custom_grid": {"dt": grid},
        }
    )
    tried = sorted((t.params["max_depth"], t.params["min_samples_leaf"]) for t in report.trials)
    assert tried == sorted((d, m) for d in grid["max_depth"] for m in grid["min_samples_leaf"])
    assert report.storage == "scikit-learn" and len(report.completed) == 6


def test_optuna_grid_is_bounded_by_the_grid_and_random_draws_from_ranges() -> None:
    _, grid, _ = _tuned(
        {"n_iter": 40, "search_algorithm": "grid", "custom_grid": {"dt": {"max_depth": [2, 3]}}}
    )
    assert sorted(t.params["max_depth"] for t in grid.trials) == [2, 3]
    _, drawn, _ = _tuned(
        {
            "n_iter": 4,
            "search_algorithm": "random",
            "custom_grid": {"dt": {"min_impurity_decrease": {"low": 0.0, "high": 0.01}}},
        }
    )
    values = [t.params["min_impurity_decrease"] for t in drawn.trials]
    assert len(values) == 4 and all(0.0 <= v <= 0.01 for v in values)


def test_early_stopping_reports_each_fold_and_optimize_picks_the_metric() -> None:
    _, report, _ = _tuned(
        {
            "n_iter": 6,
            "early_stopping": "successive_halving",
            "optimize": "F1",
            "custom_grid": {"dt": {"max_depth": {"low": 1, "high": 6}}},
        }
    )
    assert report.metric == "F1"
    assert len([t for t in report.trials if t.state in ("COMPLETE", "PRUNED")]) == 6
    for trial in report.completed:
        assert trial.value == sum(trial.fold_metrics["F1"]) / len(trial.fold_metrics["F1"])
        assert trial.host and trial.pid and trial.seconds is not None


def test_choose_better_false_keeps_the_tuned_model_even_when_worse() -> None:
    worse = {"custom_grid": {"dt": {"max_depth": [1]}}, "n_iter": 2}
    kept, _, _ = _tuned(worse)
    forced, _, _ = _tuned({**worse, "choose_better": False})
    assert [c.id for c in forced.candidates] == ["dt", "dt_tuned"]
    assert forced.candidate("dt_tuned").params["max_depth"] == 1
    if kept.candidate("dt").mean_metrics["AUC"] >= forced.candidate("dt_tuned").mean_metrics["AUC"]:
        assert [c.id for c in kept.candidates] == ["dt"]
        assert kept.candidate("dt").tuning is not None  # the trials are tracked all the same
