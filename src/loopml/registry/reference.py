"""The one grammar of a model reference, used by serving, batch scoring, gates and monitoring.

::

    NAME                   NAME@champion (what serves)
    NAME@ALIAS             the version the alias points at when it is resolved
    NAME/VERSION           one fixed version (a positive integer)
    models:/NAME@ALIAS     MLflow's URI forms of the same two
    models:/NAME/VERSION

``latest`` is refused in both places (``NAME/latest``, ``NAME@latest``): MLflow
reads it as "the newest registered version", which moves with every
registration whether or not the gate promoted it; ``NAME@champion`` is what
serves, ``NAME@challenger`` the newest candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.core.errors import ModelNotFoundError, ModelReferenceError
from loopml.core.settings import Settings

CHAMPION = "champion"
PREFIX = "models:/"
FORMS = "NAME, NAME@ALIAS, NAME/VERSION, models:/NAME@ALIAS or models:/NAME/VERSION"
_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")
_BAD_NAME = re.compile(r"[@/:\s]")


@dataclass(frozen=True)
class ModelReference:
    """A registered model name with an alias or a version (exactly one of the two)."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if (self.alias is None) == (self.version is None):
            raise ModelReferenceError(
                f"model reference {self.name!r}: give exactly one of an alias and a version"
            )

    @classmethod
    def parse(cls, text: str) -> ModelReference:
        """Read ``text`` in the one grammar; a bare name means ``NAME@champion``."""
        return parse_reference(text)

    @property
    def watches(self) -> bool:
        """An alias can move, so a server follows it; a fixed version cannot."""
        return self.alias is not None

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"

    def resolve(self, settings: Settings) -> str:
        """The version this reference points at now; :class:`ModelNotFoundError` if none."""
        from loopml.registry.models import get_version, version_for_alias

        if self.version is not None:
            return get_version(settings, self.name, self.version).version
        assert self.alias is not None
        found = version_for_alias(settings, self.name, self.alias)
        if found is None:
            raise not_found(settings, self.name, f"no version has the alias {self.alias!r}")
        return found

    def pin(self, settings: Settings) -> ModelReference:
        """The same model fixed to the version it points at now (a batch job must not move)."""
        return ModelReference(self.name, version=self.resolve(settings))


def parse_reference(text: str) -> ModelReference:
    """``text`` as a :class:`ModelReference`; :class:`ModelReferenceError` says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(text, "it is empty")
    body = text.strip()
    if body.startswith(PREFIX):
        body = body[len(PREFIX) :]
    if "@" in body and "/" in body:
        raise _bad(text, "give either @ALIAS or /VERSION, not both")
    name, alias, version = body, None, None
    if "@" in body:
        name, _, alias = body.partition("@")
    elif "/" in body:
        name, _, version = body.partition("/")
    if not name:
        raise _bad(text, "the model name is missing")
    if _BAD_NAME.search(name):
        raise _bad(text, f"the name {name!r} may not contain '@', '/', ':' or spaces")
    if alias is not None:
        if not alias:
            raise _bad(text, "the alias after '@' is missing")
        if alias.lower() == "latest":
            raise _latest(text, name)
        if not _ALIAS.match(alias):
            raise _bad(text, f"the alias {alias!r} may hold only letters, digits, '_' and '-'")
        return ModelReference(name, alias=alias)
    if version is not None:
        if not version:
            raise _bad(text, "the version after '/' is missing")
        if version.lower() == "latest":
            raise _latest(text, name)
        if not version.isdigit() or int(version) < 1:
            raise _bad(text, f"the version {version!r} is not a positive whole number")
        return ModelReference(name, version=str(int(version)))
    return ModelReference(name, alias=CHAMPION)


def not_found(settings: Settings, name: str, what: str) -> ModelNotFoundError:
    """A :class:`ModelNotFoundError` naming what exists and the registry looked in."""
    from loopml.registry.models import list_models, list_versions

    try:
        versions = list_versions(settings, name)
        if versions:
            found = ", ".join(
                v.version + (f" ({', '.join(v.aliases)})" if v.aliases else "") for v in versions
            )
            exists = f"its versions: {found}"
        else:
            names = sorted(list_models(settings))
            exists = (
                f"there is no registered model {name!r}; registered models: "
                f"{', '.join(names) if names else 'none'}"
            )
    except Exception as exc:  # the registry itself is unreachable: say so, do not hide it
        exists = f"the registry could not be listed ({type(exc).__name__}: {exc})"
    return ModelNotFoundError(
        f"model {name!r}: {what}; {exists} (registry at {settings.tracking}). "
        f"`loopml models list {name}` shows its versions and aliases"
    )


def _bad(text: object, why: str) -> ModelReferenceError:
    return ModelReferenceError(
        f"model reference {text!r} is not understood: {why}; write {FORMS} "
        "(for example fraud@champion or fraud/3)"
    )


def _latest(text: str, name: str) -> ModelReferenceError:
    return ModelReferenceError(
        f"model reference {text!r}: 'latest' is not supported, it moves with every registration "
        f"whether or not the gate promoted it; use {name}@champion (what serves), "
        f"{name}@challenger (the newest candidate) or a version number"
    )
