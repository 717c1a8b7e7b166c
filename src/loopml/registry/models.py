"""Registering models and moving the aliases that say what serves.

``champion`` is what serves; ``challenger`` is the newest candidate. Aliases
are MLflow's own, so ``models:/NAME@champion`` works with every MLflow tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings
from loopml.registry.tracking import use_tracking

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model."""

    name: str
    version: str
    source: str
    run_id: str | None
    aliases: tuple[str, ...]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _client(settings: Settings) -> Any:
    return use_tracking(settings).MlflowClient()


def register_version(
    settings: Settings, model_uri: str, name: str, tags: dict[str, str]
) -> RegisteredVersion:
    """Register ``model_uri`` as a new version of ``name`` (created on first use)."""
    mlflow = use_tracking(settings)
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow.register_model(model_uri, name, tags=tags)
    except MlflowException as exc:
        raise LoopmlError(f"could not register {model_uri} as {name!r}: {exc.message}") from exc
    return RegisteredVersion(name, str(version.version), str(version.source), version.run_id, ())


def set_alias(settings: Settings, name: str, alias: str, version: str) -> None:
    """Point ``name@alias`` at ``version``."""
    _client(settings).set_registered_model_alias(name, alias, version)


def version_for_alias(settings: Settings, name: str, alias: str) -> str | None:
    """The version ``name@alias`` points at, or ``None`` when the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def get_version(settings: Settings, name: str, version: str) -> RegisteredVersion:
    found = _client(settings).get_model_version(name, version)
    return RegisteredVersion(
        name, str(found.version), str(found.source), found.run_id, tuple(found.aliases)
    )
