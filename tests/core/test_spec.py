"""Reading specs: the seed examples verbatim, JSON leniency, YAML, and frame-level errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.core.errors import SpecError
from loopml.core.spec import parse_spec, read_spec_file
from tests.bombs import yaml_alias_bomb
from tests.conftest import FIXTURES

EXPERIMENT = {
    "experiment_name": "e",
    "model_name": "m",
    "main_metric": "F1",
    "problem_type": "classification",
    "target": "Class",
}


def test_seed_specs_parse_verbatim() -> None:
    kaggle = read_spec_file(FIXTURES / "seed_kaggle_spec.json")
    assert [call.name for call in kaggle.steps] == [
        "load_data_from_kaggle",
        "train_model",
        "register_model",
    ]
    assert kaggle.steps[1].path == "pipeline[0].MLSteps[1].train_model"
    assert kaggle.experiment.main_metric == "F1"

    local = read_spec_file(FIXTURES / "seed_file_spec.json")  # has trailing commas
    assert [call.name for call in local.steps] == ["load_data_from_file", "train_model"]
    assert local.steps[1].params["modeling_params"]["estimator_list"] == ["dt", "lr"]
    assert local.experiment.main_metric == "Kappa"


def test_yaml_and_json_give_the_same_spec_and_hash(tmp_path: Path) -> None:
    json_spec = read_spec_file(FIXTURES / "seed_file_spec.json")
    import yaml

    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text(yaml.safe_dump(dict(json_spec.document)))
    yaml_spec = read_spec_file(yaml_file)
    assert yaml_spec.spec_hash == json_spec.spec_hash
    assert yaml_spec.steps == json_spec.steps


def test_metric_names_are_accepted_in_pycaret_spellings() -> None:
    spec = parse_spec(
        '{"pipeline": [{"MLSteps": [{"x": {}}]}], '
        '"experiment_config": {"experiment_name": "e", "model_name": "m", '
        '"main_metric": "precision", "problem_type": "classification", "target": "y"}}'
    )
    assert spec.experiment.main_metric == "Prec."


def test_all_frame_errors_are_reported_together_with_paths_and_suggestions() -> None:
    text = """
    pipline: []
    pipeline:
      - MLStep: []
      - MLSteps: [{"a": {}, "b": {}}]
    experiment_config:
      experiment_name: e
      model_name: m
      main_metric: F1
      problem_type: regresion
      targt: y
    """
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    rendered = {issue.path: issue.render() for issue in caught.value.issues}
    assert "did you mean 'pipeline'" in rendered["pipline"]
    assert "did you mean 'MLSteps'" in rendered["pipeline[0].MLStep"]
    assert "exactly one key" in rendered["pipeline[1].MLSteps[0]"]
    assert "did you mean 'regression'" in rendered["experiment_config.problem_type"]
    assert "did you mean 'target'" in rendered["experiment_config.targt"]
    assert "required" in rendered["experiment_config.target"]
    assert caught.value.exit_code == 2


def test_metric_of_the_wrong_problem_type_names_the_allowed_ones() -> None:
    with pytest.raises(SpecError) as caught:
        parse_doc({**_doc(), "experiment_config": {**EXPERIMENT, "problem_type": "regression"}})
    (issue,) = caught.value.issues
    assert issue.path == "experiment_config.main_metric"
    assert "classification metric 'F1' does not fit problem_type 'regression'" in issue.message
    assert "RMSE" in issue.message


def test_unparseable_text_says_where() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_spec('{"pipeline": [ }')


def test_a_missing_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        read_spec_file(tmp_path / "nope.json")


def _doc() -> dict[str, object]:
    return {"pipeline": [{"MLSteps": [{"x": {}}]}], "experiment_config": EXPERIMENT}


def parse_doc(document: dict[str, object]) -> None:
    import json

    parse_spec(json.dumps(document))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        "a:\n" + "".join("  " * depth + "- \n" for depth in range(1, 3000)),
        "- " * 5000 + "x",
        '{"pipeline": ' + "[" * 200 + "]" * 200 + "}",
        yaml_alias_bomb(),
    ],
    ids=["json-lists", "json-objects", "yaml-block", "yaml-flow", "moderate", "alias-bomb"],
)
def test_nesting_and_alias_bombs_are_a_spec_error(text: str) -> None:
    # before: RecursionError out of json5 / PyYAML (a 500 from POST /jobs), and an alias
    # bomb expanded by whatever walked the document next
    with pytest.raises(SpecError, match="nested deeper than 64 levels or holding more than"):
        parse_spec(text)
