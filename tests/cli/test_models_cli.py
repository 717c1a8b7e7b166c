"""The gated example spec end to end from the CLI, then `loopml models` on what it left."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import json5
import pytest
from typer.testing import CliRunner

from loopml.cli.main import app
from loopml.core.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
from make_creditcard import make_creditcard, write_zip

EXAMPLES = Path(__file__).parents[2] / "examples"

runner = CliRunner()


def _example(folder: Path, model_name: str) -> Path:
    """The shipped example spec, unchanged but for the model name, beside fresh small data."""
    spec = json5.loads((EXAMPLES / "gated_credit_fraud.json").read_text())
    spec["experiment_config"]["model_name"] = model_name
    write_zip(
        make_creditcard(1500, positive_rate=0.06, seed=8), folder / "data" / "creditcardfraud.zip"
    )
    path = folder / "gated.json"
    path.write_text(json.dumps(spec))
    return path


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store is tested on both
def test_gated_spec_runs_end_to_end_and_models_commands_manage_it(
    loopml_env: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    name = f"cli_gated_{request.node.callspec.id}"
    spec = _example(tmp_path, name)
    steps = [next(iter(step)) for step in json5.loads(spec.read_text())["pipeline"][0]["MLSteps"]]
    assert steps.index("validate_data") < steps.index("train_model") < steps.index("validate_model")

    first = _ok("run", str(spec))
    assert "promoted" in first
    # The second run checks its data against the champion's profile; a min_delta no model can
    # clear keeps the gate's answer deterministic (a fresh split could let v2 win by chance).
    document = json5.loads(spec.read_text())
    for step in document["pipeline"][0]["MLSteps"]:
        if "validate_model" in step:
            step["validate_model"]["min_delta"] = 0.5
    spec.write_text(json.dumps(document))
    second = _ok("run", str(spec))
    assert "(version 1)" in second and "'status': 'ok'" in second
    assert "'decision'" in second

    listing = _ok("models", "list", name)
    assert "champion" in listing and "challenger" in listing
    assert name in _ok("models", "list")

    before = datetime.now(UTC).isoformat()
    promoted = _ok("models", "promote", name, "2", "--reason", "try v2", "--actor", "ana")
    assert f"{name}@champion: 1 -> 2" in promoted
    rolled = _ok("models", "rollback", name, "--reason", "v2 misbehaves")
    assert f"{name}@champion: 2 -> 1" in rolled

    history = _ok("models", "history", name)
    for expected in ("try v2", "ana", "rollback: v2 misbehaves", "registered by run"):
        assert expected in history
    at = _ok("models", "history", name, "--at", before, "--alias", "champion")
    assert f"{name}@champion at" in at and "version 1" in at

    missing = runner.invoke(app, ["models", "approve", name, "2"])
    assert missing.exit_code == 1 and "not waiting for approval" in missing.output
    bad_date = runner.invoke(app, ["models", "history", name, "--at", "yesterday"])
    assert bad_date.exit_code == 2 and "not a date-time" in bad_date.output
