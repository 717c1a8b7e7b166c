"""Model trust: a version loads only when someone loopml trusts vouched for these exact files.

Each test attacks the way the old all-or-nothing switch failed: files altered
in the artifact store after registration (a planted pickle that would run code),
versions registered straight with MLflow, a forged hash tag, an approval of
files that changed again afterwards. Loads go through the one loader that
serving and batch scoring use.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.errors import LoopmlError, ModelNotFoundError, UntrustedModelError
from loopml.core.settings import Settings
from loopml.lifecycle import approve_files, load_trusted
from loopml.registry.loading import LoadedVersion
from loopml.registry.models import get_version, set_version_tag
from loopml.registry.reference import ModelReference
from loopml.registry.trust import SHA256_TAG, artifact_sha256
from loopml.store.trust import TrustTable
from tests.registry import small


def _load(settings: Settings, name: str, version: str) -> LoadedVersion:
    return load_trusted(settings, ModelReference(name, version=version))


def test_the_hash_covers_every_byte_path_and_boundary(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "sub").mkdir(parents=True)
    (folder / "MLmodel").write_bytes(b"flavors: {}\n")
    (folder / "sub" / "x.bin").write_bytes(b"abc")
    first = artifact_sha256(folder)
    assert first == artifact_sha256(folder)
    (folder / "registered_model_meta").write_text("model_name: x")  # written by MLflow's client
    assert artifact_sha256(folder) == first
    (folder / "sub" / "x.bin").write_bytes(b"abd")
    assert artifact_sha256(folder) != first
    (folder / "sub" / "x.bin").write_bytes(b"abc")
    assert artifact_sha256(folder) == first
    (folder / "sub" / "x.bin").rename(folder / "sub" / "y.bin")  # same bytes, another name
    assert artifact_sha256(folder) != first
    (folder / "sub" / "y.bin").rename(folder / "sub" / "x.bin")
    # bytes moved from one file to the next: the same concatenation, another model
    (folder / "MLmodel").write_bytes(b"flavors: {}\na")
    (folder / "sub" / "x.bin").write_bytes(b"bc")
    assert artifact_sha256(folder) != first
    (folder / "sub" / "x.bin").write_bytes(b"abc")
    (folder / "MLmodel").write_bytes(b"flavors: {}\n")
    (folder / "extra").write_bytes(b"")  # an added empty file
    assert artifact_sha256(folder) != first


def test_registration_records_hash_and_registrar_in_the_store_and_the_tag(
    settings: Settings,
) -> None:
    name = small.new_name()
    version = small.register_with_loopml(settings, name)
    tag = get_version(settings, name, version).tags[SHA256_TAG]
    with TrustTable(settings.database) as table:
        record = table.registration(name, version)
    assert record is not None and record.sha256 == tag and len(tag) == 64
    assert record.registrar
    assert artifact_sha256(small.stored_folder(settings, name, version)) == tag
    loaded = load_trusted(settings, ModelReference(name, version=version))
    assert loaded.trust.sha256 == tag
    assert f"registered through loopml by {record.registrar}" in loaded.trust.basis
    assert len(loaded.score(small.frame(5)).predictions) == 5


def test_a_planted_pickle_is_refused_before_it_is_unpickled(
    settings: Settings, tmp_path: Path
) -> None:
    name = small.new_name()
    version = small.register_with_loopml(settings, name)
    marker = tmp_path / "code-ran"
    small.plant_pickle(small.stored_folder(settings, name, version), marker)
    with pytest.raises(UntrustedModelError) as caught:
        _load(settings, name, version)
    message = str(caught.value)
    assert f"refusing to load model {name!r} version {version}" in message
    assert "artifacts changed since it was registered" in message
    assert f"loopml models trust {name} {version}" in message
    assert not marker.exists()  # nothing of the altered file was unpickled
    assert isinstance(caught.value, LoopmlError)

    # editing the MLflow tag to the new hash does not help: the store is the authority
    set_version_tag(
        settings,
        name,
        version,
        SHA256_TAG,
        artifact_sha256(small.stored_folder(settings, name, version)),
    )
    with pytest.raises(UntrustedModelError, match="changed since it was registered"):
        _load(settings, name, version)
    # nor does a trusted-registrar list, even one trusting everybody
    trusting = settings.model_copy(update={"trusted_registrars": ["*", "root"]})
    with pytest.raises(UntrustedModelError, match="changed since it was registered"):
        _load(trusting, name, version)
    assert not marker.exists()


def test_an_edited_mlmodel_is_refused(settings: Settings) -> None:
    name = small.new_name()
    version = small.register_with_loopml(settings, name)
    mlmodel = small.stored_folder(settings, name, version) / "MLmodel"
    mlmodel.write_text(mlmodel.read_text() + "\n# one comment\n")
    with pytest.raises(UntrustedModelError, match="changed since it was registered"):
        _load(settings, name, version)


def test_a_version_registered_outside_loopml_needs_a_trusted_registrar_or_an_approval(
    settings: Settings, tmp_path: Path
) -> None:
    name = small.new_name()
    version = small.register_with_mlflow(settings, name)
    with pytest.raises(UntrustedModelError) as caught:
        _load(settings, name, version)
    assert "registered outside loopml" in str(caught.value)
    assert "LOOPML_TRUSTED_REGISTRARS" in str(caught.value)
    # without an authenticating tracking server, MLflow knows only the run's user
    run_user = getpass.getuser()
    assert f"by {run_user!r}" in str(caught.value)
    loaded = _load(settings.model_copy(update={"trusted_registrars": [run_user]}), name, version)
    assert f"trusted registrar {run_user}" in loaded.trust.basis

    # the version's own user_id (set by an authenticating server) wins over the run's user
    small.set_mlflow_registrar(settings, name, version, "alice")
    with pytest.raises(UntrustedModelError, match="by 'alice'"):
        _load(settings.model_copy(update={"trusted_registrars": ["bob", run_user]}), name, version)
    loaded = _load(
        settings.model_copy(update={"trusted_registrars": ["bob", "alice"]}), name, version
    )
    assert "trusted registrar alice" in loaded.trust.basis

    # a forged hash tag on a version without a loopml record is evidence enough to refuse
    set_version_tag(settings, name, version, SHA256_TAG, "0" * 64)
    with pytest.raises(UntrustedModelError, match=r"do not match its loopml\.artifact_sha256 tag"):
        _load(settings.model_copy(update={"trusted_registrars": ["alice"]}), name, version)


def test_an_approval_pins_the_files_it_approved(settings: Settings, tmp_path: Path) -> None:
    name = small.new_name()
    version = small.register_with_mlflow(settings, name)
    with pytest.raises(UntrustedModelError):
        _load(settings, name, version)
    approval = approve_files(settings, name, version, reason="checked by hand", actor="carol")
    loaded = _load(settings, name, version)
    assert "approved by carol" in loaded.trust.basis
    assert loaded.trust.sha256 == approval.sha256

    marker = tmp_path / "code-ran"
    small.plant_pickle(small.stored_folder(settings, name, version), marker)
    with pytest.raises(UntrustedModelError, match="changed since carol approved it"):
        _load(settings, name, version)
    assert not marker.exists()


def test_an_approval_of_changed_files_overrides_the_registration_record(
    settings: Settings,
) -> None:
    name = small.new_name()
    version = small.register_with_loopml(settings, name)
    mlmodel = small.stored_folder(settings, name, version) / "MLmodel"
    mlmodel.write_text(mlmodel.read_text() + "\n# reviewed change\n")
    with pytest.raises(UntrustedModelError):
        _load(settings, name, version)
    approve_files(settings, name, version, reason="reviewed the MLmodel edit", actor="dave")
    assert "approved by dave" in _load(settings, name, version).trust.basis


def test_models_trust_command_records_who_and_refuses_a_missing_version(
    loopml_env: Settings,
) -> None:
    settings = loopml_env
    name = small.new_name()
    version = small.register_with_mlflow(settings, name)
    runner = CliRunner()
    result = runner.invoke(
        app, ["models", "trust", name, version, "--reason", "audited", "--actor", "erin"]
    )
    assert result.exit_code == 0, result.output
    assert f"trusted {name} version {version}" in result.output
    with TrustTable(settings.database) as table:
        approval = table.approval(name, version)
    assert approval is not None and approval.actor == "erin" and approval.reason == "audited"
    assert approval.sha256 in result.output

    missing = runner.invoke(app, ["models", "trust", name, "9"])
    assert missing.exit_code == 2
    assert "there is no version 9" in missing.output
    with pytest.raises(ModelNotFoundError, match="there is no registered model"):
        approve_files(settings, small.new_name(), "1", reason="x")


def test_a_missing_version_is_not_found_before_anything_is_downloaded(settings: Settings) -> None:
    from loopml.lifecycle import check_trusted

    name = small.new_name()
    small.register_with_loopml(settings, name)
    for attempt in (
        lambda: _load(settings, name, "9"),
        lambda: check_trusted(settings, ModelReference(name, version="9")),
        lambda: check_trusted(settings, ModelReference(name, alias="nope")),
    ):
        with pytest.raises(ModelNotFoundError) as caught:
            attempt()
        assert "its versions: 1" in str(caught.value)
        assert settings.tracking in str(caught.value)
