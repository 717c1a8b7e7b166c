"""Registering models and moving the aliases that say what serves.

``champion`` is what serves; ``challenger`` is the newest candidate;
``previous`` is the champion before the current one, where a rollback goes.
Aliases are MLflow's own, so ``models:/NAME@champion`` works with every MLflow
tool.

Every alias move goes through :func:`move_alias`, which takes an ``audit``
callback: this layer cannot import the metadata store, so the caller
(``loopml.lifecycle``) hands in the recorder that writes the move down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from loopml.core.errors import LoopmlError, StoreError
from loopml.core.settings import Settings
from loopml.registry.tracking import use_tracking

if TYPE_CHECKING:
    from loopml.core.profile import ReferenceProfile

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
APPROVAL_TAG = "loopml.approval"


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model."""

    name: str
    version: str
    source: str
    run_id: str | None
    aliases: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at_ms: int | None = None
    user_id: str | None = None
    """Who registered it, as MLflow recorded it (an authenticated tracking server sets it)."""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _client(settings: Settings) -> Any:
    return use_tracking(settings).MlflowClient()


def register_version(
    settings: Settings, model_uri: str, name: str, tags: dict[str, str]
) -> RegisteredVersion:
    """Register ``model_uri`` as a new version of ``name`` (created on first use).

    The artifacts are hashed first and the hash goes in with the version's tags
    (``loopml.artifact_sha256``), so the version never exists without it. This
    records nothing in loopml's metadata store: ``loopml.lifecycle.register``
    does, and a version registered only here counts as registered outside loopml.
    """
    from loopml.registry.trust import SHA256_TAG, uri_sha256

    mlflow = use_tracking(settings)
    from mlflow.exceptions import MlflowException

    sha256 = uri_sha256(settings, model_uri)
    tags = {**tags, SHA256_TAG: sha256}
    try:
        version = mlflow.register_model(model_uri, name, tags=tags)
    except MlflowException as exc:
        raise LoopmlError(f"could not register {model_uri} as {name!r}: {exc.message}") from exc
    return RegisteredVersion(
        name, str(version.version), str(version.source), version.run_id, (), tags
    )


@dataclass(frozen=True)
class AliasMove:
    """One move of ``name@alias`` from one version to another (``None``: unset)."""

    name: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    run_id: str | None = None


class AliasAudit(Protocol):
    """Writes an alias move down; called right after MLflow made it."""

    def __call__(self, move: AliasMove) -> None: ...


def move_alias(
    settings: Settings,
    name: str,
    alias: str,
    version: str | None,
    *,
    audit: AliasAudit,
    actor: str,
    reason: str,
    run_id: str | None = None,
) -> AliasMove:
    """Point ``name@alias`` at ``version`` (``None`` removes it) and have ``audit`` record it.

    The one place loopml moves an alias. A move to where the alias already
    points changes nothing and records nothing.
    """
    before = version_for_alias(settings, name, alias)
    move = AliasMove(name, alias, before, version, actor, reason, run_id)
    if before == version:
        return move
    _point(settings, name, alias, version)
    try:
        audit(move)
    except Exception as exc:
        # A move nobody can account for is worse than no move: put the alias back.
        try:
            _point(settings, name, alias, before)
        except Exception as undo:
            raise StoreError(
                f"{name}@{alias} moved from {before or 'unset'} to {version or 'unset'}, but "
                f"the alias log could not record it ({_first_line(exc)}) and undoing the move "
                f"failed ({_first_line(undo)}): record it by hand or move it back"
            ) from exc
        raise StoreError(
            f"{name}@{alias} stays at {before or 'unset'}: the alias log could not record the "
            f"move ({_first_line(exc)}); try again when the metadata store is back"
        ) from exc
    return move


def _point(settings: Settings, name: str, alias: str, version: str | None) -> None:
    if version is None:
        _client(settings).delete_registered_model_alias(name, alias)
    else:
        set_alias(settings, name, alias, version)


def _first_line(exc: BaseException) -> str:
    from loopml.core.access import mask_secrets

    text = str(exc).strip().splitlines()
    return mask_secrets(text[0][:300] if text else type(exc).__name__) or type(exc).__name__


def set_alias(settings: Settings, name: str, alias: str, version: str) -> None:
    """Point ``name@alias`` at ``version``, unrecorded.

    Low level: inside loopml only :func:`move_alias` calls it (a test checks),
    so every move lands in the alias log.
    """
    from mlflow.exceptions import MlflowException

    try:
        _client(settings).set_registered_model_alias(name, alias, version)
    except MlflowException as exc:
        raise LoopmlError(
            f"cannot point {name}@{alias} at version {version}: {exc.message}"
        ) from exc


def version_for_alias(settings: Settings, name: str, alias: str) -> str | None:
    """The version ``name@alias`` points at, or ``None`` when the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        # unset alias or unknown model; anything else (an unreachable registry) is an
        # error: taken for "unset", it would make rollback say "no previous champion"
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
            return None
        raise LoopmlError(
            f"cannot read {name}@{alias} from the registry: {_first_line(exc)}"
        ) from exc


def _version_view(found: Any) -> RegisteredVersion:
    return RegisteredVersion(
        str(found.name),
        str(found.version),
        str(found.source),
        found.run_id,
        tuple(found.aliases or ()),
        dict(found.tags or {}),
        found.creation_timestamp,
        found.user_id or None,
    )


def get_version(settings: Settings, name: str, version: str) -> RegisteredVersion:
    """Version ``version`` of ``name``; :class:`ModelNotFoundError` (with what exists) if none."""
    from mlflow.exceptions import MlflowException

    from loopml.registry.reference import not_found

    try:
        return _version_view(_client(settings).get_model_version(name, version))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise LoopmlError(
                f"cannot read model {name!r} version {version} from the registry at "
                f"{settings.tracking}: {exc.message}"
            ) from exc
        raise not_found(settings, name, f"there is no version {version}") from exc


def list_versions(settings: Settings, name: str) -> list[RegisteredVersion]:
    """Every version of ``name``, newest first, each with its aliases.

    MLflow's version search leaves aliases out, so they come from the model.
    """
    import dataclasses

    client = _client(settings)
    found = client.search_model_versions(f"name = '{_quote(name)}'")
    if not found:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        by_version.setdefault(str(version), []).append(str(alias))
    views = [
        dataclasses.replace(view, aliases=tuple(sorted(by_version.get(view.version, []))))
        for view in map(_version_view, found)
    ]
    return sorted(views, key=lambda v: -int(v.version))


def list_models(settings: Settings) -> dict[str, dict[str, str]]:
    """Every registered model name with its aliases (``{alias: version}``)."""
    models = _client(settings).search_registered_models()
    return {
        str(model.name): {str(k): str(v) for k, v in (model.aliases or {}).items()}
        for model in models
    }


def set_version_tag(settings: Settings, name: str, version: str, key: str, value: str) -> None:
    _client(settings).set_model_version_tag(name, version, key, value)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def parse_model_reference(reference: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of ``reference`` in the one grammar (``registry.reference``)."""
    from loopml.registry.reference import parse_reference

    ref = parse_reference(reference)
    return ref.name, ref.alias, ref.version


def resolve_version(settings: Settings, reference: str) -> tuple[str, str | None]:
    """(name, version) for a model reference; version ``None`` when the alias is unset."""
    name, alias, version = parse_model_reference(reference)
    if alias is not None:
        return name, version_for_alias(settings, name, alias)
    return name, version


def reference_profile(settings: Settings, name: str, version: str) -> ReferenceProfile | None:
    """The reference profile logged next to version ``version`` of ``name``, if it has one.

    Serving and batch scoring call this once per model they load, then
    :func:`loopml.core.checker.check_records` / ``check_batch`` per request.
    """
    import tempfile
    from pathlib import Path

    from mlflow.exceptions import MlflowException

    from loopml.core.profile import PROFILE_FILE, ReferenceProfile

    mlflow = use_tracking(settings)
    with tempfile.TemporaryDirectory(prefix="loopml-profile-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}/{PROFILE_FILE}", dst_path=folder
            )
        except (MlflowException, OSError):
            return None
        return ReferenceProfile.from_json(Path(local).read_bytes())
