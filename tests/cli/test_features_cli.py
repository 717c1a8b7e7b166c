"""``loopml features`` without Feast, and the binding a version records (main venv)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopml.core.errors import InputFileError, ModelLoadError
from loopml.core.settings import get_settings
from loopml.features import FeatureBinding

EXAMPLE_REPO = Path(__file__).parents[2] / "examples" / "feature_store" / "repo"


def test_features_without_feast_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.cli.main import app

    monkeypatch.setitem(sys.modules, "feast", None)  # `import feast` fails, installed or not
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path))
    get_settings.cache_clear()
    for command in ("status", "materialize", "apply"):
        result = CliRunner().invoke(app, ["features", command, "--repo", str(EXAMPLE_REPO)])
        assert result.exit_code == 2, result.output
        assert "pip install 'loopml[feast]'" in result.output
    # no repo anywhere: the missing extra is what to fix first, and it is bad input (exit 2)
    monkeypatch.chdir(tmp_path)
    missing = CliRunner().invoke(app, ["features", "status"])
    assert missing.exit_code == 2 and "pip install 'loopml[feast]'" in missing.output
    get_settings.cache_clear()


def test_a_folder_without_feature_store_yaml_is_bad_input(tmp_path: Path) -> None:
    """Named by --repo or LOOPML_FEATURE_REPO, a wrong folder is a typo: exit code 2."""
    from loopml.features import repo_dir

    with pytest.raises(InputFileError, match=r"feature_store\.yaml does not exist") as caught:
        repo_dir(tmp_path)
    assert caught.value.exit_code == 2


def test_a_binding_round_trips_and_garbage_is_a_load_error() -> None:
    binding = FeatureBinding(
        repo="/r",
        features=("v:a", "v:b"),
        entity_keys=("id",),
        columns={"v:a": "a", "v:b": "b"},
        allow_override=("b",),
    )
    assert FeatureBinding.from_tags({"loopml.feature_store": binding.to_json()}) == binding
    assert FeatureBinding.from_tags({}) is None
    assert binding.may_override("b") and not binding.may_override("a")
    assert binding.feature_columns == ("a", "b")
    with pytest.raises(ModelLoadError, match="not a feature binding"):
        FeatureBinding.from_json('{"repo": "/r"}')
