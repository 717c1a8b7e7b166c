"""``loopml models reject``: the CLI face of the console's Reject, through the same function."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import get_settings
from loopml.lifecycle import history
from tests.console.conftest import MODEL, World


def test_reject_refuses_a_version_that_is_not_waiting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = world.settings
    for name, value in (
        ("LOOPML_HOME", str(settings.home)),
        ("LOOPML_TRACKING_URI", settings.tracking),
        ("LOOPML_DATABASE_URL", settings.database),
        ("LOOPML_ARTIFACT_ROOT", settings.artifacts),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    moves = len(history(settings, MODEL))
    try:
        champion = world.versions["champion"]
        result = CliRunner().invoke(app, ["models", "reject", MODEL, champion, "-r", "no"])
        missing = CliRunner().invoke(app, ["models", "reject", MODEL, champion])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "not waiting for approval" in result.output
    assert missing.exit_code == 2 and "--reason" in missing.output  # a reason is required
    assert len(history(settings, MODEL)) == moves
