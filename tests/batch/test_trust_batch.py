"""``loopml predict-batch`` refuses a version whose artifacts changed since registration:
one clear line, exit code 3, no output file, no prediction written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from loopml.batch import models as batch_models
from loopml.cli.main import app
from loopml.core.settings import Settings
from loopml.lifecycle import move_alias
from loopml.store.predictions import PredictionLog
from tests.registry import small


def test_predict_batch_refuses_altered_artifacts(loopml_env: Settings, tmp_path: Path) -> None:
    settings = loopml_env
    name = small.new_name()
    version = small.register_with_loopml(settings, name)
    move_alias(settings, name, "champion", version, reason="test")
    source = tmp_path / "rows.csv"
    small.frame(30, seed=4).to_csv(source, index=False)
    target = tmp_path / "scored.csv"
    command = ["predict-batch", "--model", name, "--input", str(source), "--output", str(target)]

    scored = CliRunner().invoke(app, command)
    assert scored.exit_code == 0, scored.output
    log = PredictionLog.open(settings.database)
    try:
        assert log.count(model_name=name) == 30
        target.unlink()

        # a new process: this one keeps the version it verified and loaded (its bytes in memory
        # are the trusted ones); the check is made when a process loads a version
        batch_models._cache.clear()
        mlmodel = small.stored_folder(settings, name, version) / "MLmodel"
        mlmodel.write_text(mlmodel.read_text() + "# edited after registration\n")
        refused = CliRunner().invoke(app, command)
        assert refused.exit_code == 3, refused.output
        assert f"refusing to load model '{name}' version {version}" in refused.output
        assert "changed since it was registered" in refused.output
        assert not target.exists()
        assert log.count(model_name=name) == 30  # nothing more written
    finally:
        log.engine.dispose()
