"""Whether a registered version may be loaded: its artifacts' content hash against the records.

Loading a scikit-learn model unpickles it, which runs whatever code the file
holds, so a version is loaded only when someone loopml trusts vouched for
these exact bytes:

1. an approval (``loopml models trust NAME VERSION``) recorded for the same hash, or
2. loopml's own registration record of the version with the same hash, or
3. no loopml record at all, and the version's MLflow registrar (``user_id``, set by
   an authenticated tracking server) is in ``LOOPML_TRUSTED_REGISTRARS`` (``*``: any).

A version whose files hash differently from what was recorded at registration
(or approval) is refused whoever registered it. The records live in loopml's
metadata store, the authority: the ``loopml.artifact_sha256`` tag on the
MLflow version is a copy for people and other tools, and anyone with
registry access can edit it. This layer cannot import the store, so callers
hand in the records (:class:`TrustRecords`), as ``move_alias`` takes its audit.

The hash: SHA-256 over every file of the model's artifact folder in sorted
order of relative POSIX path, each framed as ``path NUL size(8 bytes, big
endian) bytes``. MLflow's client-generated ``registered_model_meta`` file is
left out: it is written by the download, not stored with the version.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from loopml.core.errors import LoopmlError, UntrustedModelError
from loopml.core.settings import Settings
from loopml.registry.tracking import use_tracking

SHA256_TAG = "loopml.artifact_sha256"
"""Version tag holding the artifacts' hash at registration (a copy; the store is the authority)."""
REGISTRAR_TAG = "loopml.registrar"
ANY_REGISTRAR = "*"
_NOT_CONTENT = frozenset({"registered_model_meta"})
_CHUNK = 1 << 20


def artifact_sha256(folder: Path) -> str:
    """The content hash of every file under ``folder`` (see the module docstring)."""
    digest = hashlib.sha256()
    files = sorted(
        (path.relative_to(folder).as_posix(), path)
        for path in folder.rglob("*")
        if path.is_file() or (path.is_symlink() and not path.is_dir())
    )
    for relative, path in files:
        if relative in _NOT_CONTENT:
            continue
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def downloaded(settings: Settings, artifact_uri: str) -> Iterator[Path]:
    """The artifacts at ``artifact_uri`` copied into a private temporary folder, removed after.

    Loading from this copy, after hashing it, leaves no window in which the
    store's files could change between the check and the unpickling.
    """
    from mlflow.exceptions import MlflowException

    mlflow = use_tracking(settings)
    with tempfile.TemporaryDirectory(prefix="loopml-model-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=folder)
        except (MlflowException, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise LoopmlError(
                f"cannot download {artifact_uri} from the registry at {settings.tracking}: "
                f"{message}"
            ) from exc
        yield Path(local)


def uri_sha256(settings: Settings, artifact_uri: str) -> str:
    """The content hash of the model at ``artifact_uri`` (downloaded, hashed, removed)."""
    with downloaded(settings, artifact_uri) as folder:
        return artifact_sha256(folder)


class Registration(Protocol):
    """What loopml recorded when it registered a version."""

    @property
    def sha256(self) -> str: ...
    @property
    def registrar(self) -> str: ...
    @property
    def registered_at(self) -> datetime: ...


class Approval(Protocol):
    """A person's recorded decision to trust a version's files as they were then."""

    @property
    def sha256(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def approved_at(self) -> datetime: ...


class TrustRecords(Protocol):
    """The metadata store's trust records (``loopml.store.trust.TrustTable``)."""

    def registration(self, name: str, version: str) -> Registration | None: ...

    def approval(self, name: str, version: str) -> Approval | None: ...


@dataclass(frozen=True)
class TrustVerdict:
    """Why a version may be loaded; shown on ``/metadata`` and in the log."""

    sha256: str
    basis: str


def verify(
    settings: Settings,
    name: str,
    version: str,
    sha256: str,
    *,
    records: TrustRecords,
    mlflow_registrar: str | None,
    tagged_sha256: str | None,
) -> TrustVerdict:
    """Judge version ``version`` of ``name`` whose files hash to ``sha256``; raise if untrusted."""
    approval = records.approval(name, version)
    if approval is not None and approval.sha256 == sha256:
        return TrustVerdict(
            sha256, f"approved by {approval.actor} at {approval.approved_at.isoformat()}"
        )
    registration = records.registration(name, version)
    if registration is not None:
        if registration.sha256 == sha256:
            return TrustVerdict(
                sha256,
                f"registered through loopml by {registration.registrar} at "
                f"{registration.registered_at.isoformat()}",
            )
        raise UntrustedModelError(
            name,
            version,
            f"its artifacts changed since it was registered (loopml recorded sha256 "
            f"{registration.sha256} when {registration.registrar} registered it at "
            f"{registration.registered_at.isoformat()}; the files now hash to {sha256})"
            + _approve_hint(name, version),
        )
    if approval is not None:
        raise UntrustedModelError(
            name,
            version,
            f"its artifacts changed since {approval.actor} approved it at "
            f"{approval.approved_at.isoformat()} (approved sha256 {approval.sha256}; the files "
            f"now hash to {sha256})" + _approve_hint(name, version),
        )
    if tagged_sha256 and tagged_sha256 != sha256:
        raise UntrustedModelError(
            name,
            version,
            f"its artifacts do not match its {SHA256_TAG} tag ({tagged_sha256}; the files hash "
            f"to {sha256}) and loopml has no record of it" + _approve_hint(name, version),
        )
    trusted = settings.trusted_registrars
    if ANY_REGISTRAR in trusted:
        return TrustVerdict(
            sha256, f"registered outside loopml; LOOPML_TRUSTED_REGISTRARS={ANY_REGISTRAR}"
        )
    if mlflow_registrar and mlflow_registrar in trusted:
        return TrustVerdict(
            sha256, f"registered outside loopml by trusted registrar {mlflow_registrar}"
        )
    who = f"by {mlflow_registrar!r}" if mlflow_registrar else "by an unknown registrar"
    raise UntrustedModelError(
        name,
        version,
        f"it was registered outside loopml ({who}; the metadata store has no trust record of "
        f"it) and that registrar is not in LOOPML_TRUSTED_REGISTRARS"
        + _approve_hint(name, version),
    )


def _approve_hint(name: str, version: str) -> str:
    return (
        f". If you have checked these files, `loopml models trust {name} {version}` approves "
        "them as they are now"
    )
