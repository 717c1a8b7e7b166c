"""The feature store in the monitor's pass: materialize, then alert on a stale online store.

A scheduled monitor given ``--materialize REPO`` runs an incremental materialization
before each pass, so the online features serving reads stay fresh without another
scheduler. Whether or not it materializes, a champion trained from a feature store has
its online views checked: a view whose data ends more than
``feature_stale_after_s`` ago (or that was never materialized) raises a
``stale_features`` alert, as does a materialization that fails.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from loopml.core.errors import ConfigError, LoopmlError
from loopml.core.settings import Settings
from loopml.monitoring.alerts import Alert, Alerter

log = logging.getLogger(__name__)
STALE = "stale_features"


def champion_repo(settings: Settings, name: str) -> str | None:
    """The Feast repo the champion of ``name`` was trained from, if any."""
    from loopml.features import FeatureBinding
    from loopml.registry.models import CHAMPION, get_version, version_for_alias

    version = version_for_alias(settings, name, CHAMPION)
    if version is None:
        return None
    binding = FeatureBinding.from_tags(get_version(settings, name, version).tags)
    return None if binding is None else (settings.feature_repo or binding.repo)


def check_features(
    settings: Settings, name: str, repo: str | None, alerter: Alerter, *, materialize: bool
) -> dict[str, Any] | None:
    """Materialize ``repo`` (when asked), then alert on stale views; what was found."""
    from loopml.features.materialize import materialize as run_materialize
    from loopml.features.materialize import status

    if repo is None:
        try:
            repo = champion_repo(settings, name)
        except LoopmlError as exc:  # no registry entry yet: nothing to check
            log.debug("no feature binding for %s: %s", name, exc)
    if repo is None:
        return None
    problems: list[str] = []
    if materialize:
        try:
            run_materialize(settings, repo)
        except ConfigError:
            raise  # Feast is not installed: the operator must know, not a silent pass
        except Exception as exc:
            problems.append(f"materializing {repo} failed: {type(exc).__name__}: {exc}")
    try:
        found = status(settings, repo)
    except LoopmlError as exc:
        problems.append(f"cannot read the feature store {repo}: {exc}")
        found = {"repo": repo, "views": []}
    for view in found["views"]:
        if view["stale"]:
            age = "never materialized" if view["age_s"] is None else f"{view['age_s']:.0f} s old"
            problems.append(
                f"online feature view {view['view']} is stale ({age}; limit "
                f"{settings.feature_stale_after_s:g} s)"
            )
    if problems:
        now = datetime.now(UTC).isoformat()
        alerter.send(
            Alert(
                model_name=name,
                model_version=None,
                window_index=-1,
                window_start=now,
                window_end=now,
                kinds=[STALE],
                messages=problems,
                action="materialize the feature store (loopml features materialize)",
            )
        )
    found["problems"] = problems
    return found
