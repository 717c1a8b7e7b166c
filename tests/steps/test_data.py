"""The data steps on real files, an fsspec filesystem, SQL databases and the Kaggle client."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopml.core.context import StepContext
from loopml.core.errors import DataError
from loopml.core.settings import Settings
from loopml.core.spec import ExperimentConfig
from loopml.steps import data, kaggle
from loopml.steps.frames import fingerprint

FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0], "name": ["x", "y", "z"], "Class": [0, 1, 0]})
EXPERIMENT = ExperimentConfig(
    experiment_name="e",
    model_name="m",
    main_metric="F1",
    problem_type="classification",
    target="Class",
)


def _context(tmp_path: Path) -> StepContext:
    settings = Settings(home=tmp_path / "home")
    return StepContext(run_id="r", experiment=EXPERIMENT, settings=settings, base_dir=tmp_path)


def _load(tmp_path: Path, **params: Any) -> pd.DataFrame:
    context = _context(tmp_path)
    definition = data.load_data_from_file
    definition(context, definition.parse(params, EXPERIMENT))
    assert context.loaded is not None
    assert context.loaded.fingerprint == fingerprint(context.data["train"])
    return context.data["train"]


def _write_zip(path: Path, members: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json", "jsonl", "zip"])
def test_each_file_format_loads_the_same_frame(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data.{suffix}"
    if suffix == "csv":
        FRAME.to_csv(path, index=False)
    elif suffix == "parquet":
        FRAME.to_parquet(path)
    elif suffix == "json":
        FRAME.to_json(path, orient="records")
    elif suffix == "jsonl":
        FRAME.to_json(path, orient="records", lines=True)
    else:
        _write_zip(path, {"creditcard.csv": FRAME.to_csv(index=False), "__MACOSX/._x": ""})
    loaded = _load(tmp_path, path=path.name)  # relative to the spec folder
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True), FRAME, check_dtype=False)


def test_fsspec_urls_are_read(tmp_path: Path) -> None:
    import fsspec

    filesystem = fsspec.filesystem("memory")
    with filesystem.open("/bucket/data.csv", "w") as handle:
        handle.write(FRAME.to_csv(index=False))
    loaded = _load(tmp_path, path="memory://bucket/data.csv")
    assert list(loaded.columns) == ["a", "name", "Class"]


def test_a_zip_with_two_tables_is_refused_by_name(tmp_path: Path) -> None:
    _write_zip(tmp_path / "two.zip", {"a.csv": "x\n1\n", "b.csv": "y\n2\n"})
    with pytest.raises(DataError, match=r"exactly one CSV file; it holds a.csv, b.csv"):
        _load(tmp_path, path="two.zip")


def test_missing_and_unknown_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path, path="missing.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"cannot tell the format .* set format"):
        _load(tmp_path, path="data.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv"):
        _load(tmp_path, path="empty.csv")


def test_format_override_and_peek(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text(FRAME.to_csv(index=False))
    params = data.load_data_from_file.parse({"path": "data.txt", "format": "csv"}, EXPERIMENT)
    assert data.load_data_from_file.peek_columns is not None
    assert data.load_data_from_file.peek_columns(params, tmp_path) == ["a", "name", "Class"]


def _sql_url(tmp_path: Path) -> str:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sa.create_engine(url)
    FRAME.to_sql("transactions", engine, index=False)
    engine.dispose()
    return url


def test_sql_query_with_parameters(tmp_path: Path) -> None:
    context = _context(tmp_path)
    step = data.load_data_from_sql
    params = step.parse(
        {
            "url": _sql_url(tmp_path),
            "query": "SELECT * FROM transactions WHERE a >= :low",
            "query_params": {"low": 2},
        },
        EXPERIMENT,
    )
    step(context, params)
    assert list(context.data["train"]["a"]) == [2.0, 3.0]
    assert step.peek_columns is not None
    assert step.peek_columns(params, tmp_path) == ["a", "name", "Class"]


def test_sql_table_name_and_postgres(tmp_path: Path, postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    FRAME.to_sql("loopml_source", engine, index=False, if_exists="replace")
    engine.dispose()
    context = _context(tmp_path)
    step = data.load_data_from_sql
    step(context, step.parse({"url": postgres_url, "query": "loopml_source"}, EXPERIMENT))
    assert context.data["train"].shape == (3, 3)


def test_a_failing_query_names_the_database_without_its_password(tmp_path: Path) -> None:
    context = _context(tmp_path)
    step = data.load_data_from_sql
    params = step.parse({"url": _sql_url(tmp_path), "query": "SELECT * FROM nowhere"}, EXPERIMENT)
    with pytest.raises(DataError, match=r"query against sqlite:///.*source\.db failed"):
        step(context, params)


def test_kaggle_without_credentials_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    monkeypatch.setenv("HOME", str(tmp_path))
    context = _context(tmp_path)
    step = kaggle.load_data_from_kaggle
    params = step.parse(
        {"kaggle_dataset_name": "mlg-ulb/creditcardfraud", "training_file_name": "creditcard.csv"},
        EXPERIMENT,
    )
    with pytest.raises(DataError, match="KAGGLE_USERNAME and KAGGLE_KEY"):
        step(context, params)


def test_kaggle_download_is_read_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the network call is replaced: authentication, paths and reading are real."""
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef")
    calls: list[tuple[str, str, str]] = []

    def fake_download(self: Any, dataset: str, file_name: str, path: str, **_: Any) -> bool:
        calls.append((dataset, file_name, path))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(file_name, FRAME.to_csv(index=False))
        Path(path, f"{file_name}.zip").write_bytes(buffer.getvalue())
        return True

    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "dataset_download_file", fake_download)
    context = _context(tmp_path)
    step = kaggle.load_data_from_kaggle
    step(
        context,
        step.parse(
            {
                "kaggle_dataset_name": "mlg-ulb/creditcardfraud",
                "training_file_name": "creditcard.csv",
            },
            EXPERIMENT,
        ),
    )
    assert context.data["train"].shape == (3, 3)
    assert context.loaded is not None
    assert context.loaded.source == "kaggle:mlg-ulb/creditcardfraud/creditcard.csv.zip"
    (_dataset, _file_name, folder) = calls[0]
    assert Path(folder) == tmp_path / "home" / "datasets" / "kaggle" / "mlg-ulb" / "creditcardfraud"


def test_kaggle_network_failure_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef")
    from kaggle.api.kaggle_api_extended import KaggleApi

    def unreachable(self: Any, *args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("Failed to resolve 'www.kaggle.com'")

    monkeypatch.setattr(KaggleApi, "dataset_download_file", unreachable)
    step = kaggle.load_data_from_kaggle
    with pytest.raises(DataError, match=r"could not download 'creditcard.csv'.*network"):
        step(
            _context(tmp_path),
            step.parse(
                {
                    "kaggle_dataset_name": "mlg-ulb/creditcardfraud",
                    "training_file_name": "creditcard.csv",
                },
                EXPERIMENT,
            ),
        )


def test_kaggle_dataset_name_must_be_owner_slash_name() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="owner/dataset"):
        kaggle.load_data_from_kaggle.parse(
            {"kaggle_dataset_name": "creditcardfraud", "training_file_name": "x.csv"}, EXPERIMENT
        )


@pytest.mark.parametrize(
    "options",
    [
        {"bogus": 1},
        {"sep": ["x"]},
        {"dtype": "no-such-type"},
        {"converters": {"a": "int"}},
        {"skiprows": "x"},
        {"chunksize": 1},
        {"iterator": True},
    ],
)
def test_read_options_pandas_refuses_are_a_data_error(tmp_path: Path, options: Any) -> None:
    # before: TypeError/AttributeError escaped (a traceback from `validate`, a job left
    # `running` by a worker), or a TextFileReader went on as if it were a frame
    FRAME.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="read_options"):
        _load(tmp_path, path="t.csv", read_options=options)


def test_a_spec_asking_for_nrows_is_peeked_and_loaded(tmp_path: Path) -> None:
    import json

    from loopml.engine import check_spec_text
    from loopml.steps.registry import StepRegistry

    FRAME.to_csv(tmp_path / "t.csv", index=False)
    assert len(_load(tmp_path, path="t.csv", read_options={"nrows": 2})) == 2
    spec = {
        "pipeline": [
            {
                "MLSteps": [
                    {"load_data_from_file": {"path": "t.csv", "read_options": {"nrows": 2}}},
                    {"train_model": {}},
                ]
            }
        ],
        "experiment_config": EXPERIMENT.model_dump(),
    }
    # before: TypeError "multiple values for keyword argument 'nrows'" from the peek
    checked = check_spec_text(
        json.dumps(spec), StepRegistry.with_builtins(), source=tmp_path / "spec.json"
    )
    assert checked.spec.steps[0].name == "load_data_from_file"
    # options pandas refuses do not break the check either (the load names them)
    bad = json.dumps(spec).replace('{"nrows": 2}', '{"bogus": 2}')
    check_spec_text(bad, StepRegistry.with_builtins(), source=tmp_path / "spec.json")


def test_a_query_error_does_not_hand_data_to_a_restricted_spec(
    tmp_path: Path, postgres_url: str
) -> None:
    # before: `CAST(<data> AS int)` put the data in the job's error, one value per job:
    # with a superuser source, pg_read_file made that any file on the database server
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    pd.DataFrame({"secret": ["hunter2-in-a-row"]}).to_sql(
        "loopml_secrets", engine, index=False, if_exists="replace"
    )
    engine.dispose()
    settings = Settings(
        home=tmp_path / "home", restrict_data=True, data_sources={"wh": postgres_url}
    )
    context = StepContext(run_id="r", experiment=EXPERIMENT, settings=settings, base_dir=None)
    step = data.load_data_from_sql
    for query in (
        "SELECT CAST(secret AS int) AS a FROM loopml_secrets",
        "SELECT CAST(pg_read_file('/etc/passwd') AS int) AS a",
        "SELECT CAST(split_part(pg_read_file('/etc/passwd'), chr(10), 1) AS int) AS a",
    ):
        with pytest.raises(DataError, match="query against wh failed") as failure:
            step(context, step.parse({"source": "wh", "query": query}, EXPERIMENT))
        assert "hunter2" not in str(failure.value)
        assert "root:" not in str(failure.value)
    # the machine's own user keeps the full message
    local = _context(tmp_path)
    params = step.parse(
        {"url": postgres_url, "query": "SELECT CAST(secret AS int) AS a FROM loopml_secrets"},
        EXPERIMENT,
    )
    with pytest.raises(DataError, match="hunter2-in-a-row"):
        step(local, params)
