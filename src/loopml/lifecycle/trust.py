"""Model trust joined across the registry and the store: registering, approving, loading.

``loopml.registry`` hashes, judges and loads; ``loopml.store.trust`` keeps the
records. This layer joins the two (they may not import each other), so every
registration through loopml is recorded, every approval is written down with
who and when, and every load is judged against the store's records.
"""

from __future__ import annotations

from loopml.core.settings import Settings
from loopml.lifecycle.aliases import current_actor
from loopml.registry import models as registry
from loopml.registry.loading import LoadedVersion, check_version, load_version
from loopml.registry.reference import ModelReference
from loopml.registry.trust import REGISTRAR_TAG, SHA256_TAG, TrustVerdict, uri_sha256
from loopml.store.trust import Approval, Registration, TrustTable


def register(
    settings: Settings,
    model_uri: str,
    name: str,
    tags: dict[str, str],
    *,
    actor: str | None = None,
    run_id: str | None = None,
) -> tuple[registry.RegisteredVersion, Registration]:
    """Register ``model_uri`` as a new version of ``name`` and record its hash and registrar."""
    registrar = current_actor(actor)
    registered = registry.register_version(
        settings, model_uri, name, {**tags, REGISTRAR_TAG: registrar}
    )
    with TrustTable(settings.database) as table:
        record = table.record_registration(
            model_name=name,
            version=registered.version,
            sha256=registered.tags[SHA256_TAG],
            registrar=registrar,
            source=model_uri,
            run_id=run_id,
        )
    return registered, record


def approve_files(
    settings: Settings, name: str, version: str, *, reason: str, actor: str | None = None
) -> Approval:
    """Trust version ``version`` of ``name`` as its files are now (hashed here), recorded."""
    registry.get_version(settings, name, version)  # ModelNotFoundError naming what exists
    sha256 = uri_sha256(settings, f"models:/{name}/{version}")
    with TrustTable(settings.database) as table:
        return table.approve(
            model_name=name,
            version=version,
            sha256=sha256,
            actor=current_actor(actor),
            reason=reason,
        )


def load_trusted(
    settings: Settings, ref: ModelReference, version: str | None = None
) -> LoadedVersion:
    """Load ``ref`` (at ``version``) judged against this metadata store's trust records."""
    with TrustTable(settings.database) as table:
        return load_version(settings, ref, records=table, version=version)


def check_trusted(settings: Settings, ref: ModelReference) -> TrustVerdict:
    """Judge what ``ref`` points at now without loading it (``UntrustedModelError`` if refused)."""
    with TrustTable(settings.database) as table:
        return check_version(settings, ref, records=table)
