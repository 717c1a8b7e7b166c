"""Settings come from LOOPML_* variables and an optional file, with embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.core.errors import ConfigError
from loopml.core.settings import Settings


def test_defaults_live_under_loopml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "LOOPML_HOME",
        "LOOPML_TRACKING_URI",
        "LOOPML_DATABASE_URL",
        "LOOPML_BROKER_URL",
        "LOOPML_ARTIFACT_ROOT",
        "LOOPML_SETTINGS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    home = tmp_path / ".loopml"
    assert settings.home == home
    assert settings.tracking == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.artifacts == (home / "artifacts").as_uri()
    assert settings.database == f"sqlite:///{home / 'loopml.db'}"
    assert settings.broker_url is None


def test_environment_names_are_the_public_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("LOOPML_TRACKING_URI", "http://tracking:5000")
    monkeypatch.setenv("LOOPML_DATABASE_URL", "postgresql://db/loopml")
    monkeypatch.setenv("LOOPML_BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    settings = Settings()
    assert settings.home == tmp_path / "h"
    assert settings.tracking == "http://tracking:5000"
    assert settings.database == "postgresql://db/loopml"
    assert settings.broker_url == "amqp://guest:guest@rabbit:5672//"


def test_settings_file_sits_under_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "loopml.yaml"
    file.write_text("database_url: sqlite:///from-file.db\nbroker_url: amqp://file//\n")
    monkeypatch.setenv("LOOPML_SETTINGS_FILE", str(file))
    monkeypatch.setenv("LOOPML_BROKER_URL", "amqp://env//")
    monkeypatch.delenv("LOOPML_DATABASE_URL", raising=False)
    settings = Settings()
    assert settings.database == "sqlite:///from-file.db"
    assert settings.broker_url == "amqp://env//"


def test_a_settings_file_with_unknown_keys_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "loopml.yaml"
    file.write_text("databse_url: x\n")
    monkeypatch.setenv("LOOPML_SETTINGS_FILE", str(file))
    with pytest.raises(ConfigError, match=r"unknown setting.*databse_url"):
        Settings()
