"""A careless user's typos: every one exits 2 with one line on stderr, and leaves no file behind.

``predict-batch``, ``models compare`` and ``export`` are given missing files,
folders, empty files, a ``.zip`` or ``.json``, outputs that exist or cannot be
written; the answer is exit code 2 (bad input), one line naming the file and
what would do, nothing on stdout, no traceback, and no output or temp file.
Most of these are refused before a model is looked up, so they run in-process
on a small registered model (two versions, logged in about a second each);
the piped run and Ctrl-C run the real command as a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from loopml.cli.main import app
from loopml.core.settings import Settings, get_settings
from tests.registry import small

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> Iterator[Path]:
    """A home with model ``careless`` (versions 1 and 2) and the files a user gets wrong."""
    folder = tmp_path_factory.mktemp("careless")
    settings = Settings(
        home=folder / "home",
        tracking_uri=tracking_uri,
        database_url=f"sqlite:///{folder / 'loopml.db'}",
        artifact_root=(folder / "artifacts").as_uri(),
    )
    variables = {
        "LOOPML_HOME": str(settings.home),
        "LOOPML_TRACKING_URI": settings.tracking,
        "LOOPML_DATABASE_URL": settings.database,
        "LOOPML_ARTIFACT_ROOT": settings.artifacts,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        from loopml.lifecycle import register

        logged = small.log_model(settings)  # one model, two versions: compare needs a pair
        for _ in range(2):
            register(settings, logged, "careless", {})
        rows = small.frame(40, seed=3)
        rows.to_csv(folder / "rows.csv", index=False)
        rows.assign(y=(rows["a"] > 0).astype(int)).to_csv(folder / "labelled.csv", index=False)
        rows.to_json(folder / "rows.json", orient="records")
        pd.DataFrame({"a": [1.0]}).to_csv(folder / "rows.zip", index=False)  # not a real zip
        (folder / "empty.csv").write_bytes(b"")
        (folder / "folder.csv").mkdir()
        yield folder
    get_settings.cache_clear()


def _refused(result: Result, *needles: str) -> str:
    """Exit code 2, one stderr line holding every needle, no stdout, no traceback."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert result.stdout == "", result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def _files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden temp files too) with its content's hash."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in folder.rglob("*")
        if path.is_file() and "home" not in path.relative_to(folder).parts
    }


def test_predict_batch_refuses_bad_files_before_scoring(world: Path) -> None:
    (world / "scored.csv").write_text("an earlier batch's scores\n")
    (world / "note.txt").write_text("not a folder\n")
    cases: list[tuple[list[str], str, tuple[str, ...]]] = [
        (["--input", "nope.csv"], "out1.csv", ("input file nope.csv", "does not exist")),
        (["--input", "folder.csv"], "out2.csv", ("folder.csv is a folder", ".parquet")),
        (["--input", "empty.csv"], "out3.csv", ("empty.csv is empty",)),
        (["--input", "rows.zip"], "out4.csv", ("'.zip'", "unzip it", ".csv, .parquet")),
        (["--input", "rows.json"], "out5.csv", ("'.json'", "convert it to CSV or Parquet")),
        (["--input", "rows.csv"], "scored.csv", ("scored.csv exists", "--overwrite")),
        (["--input", "rows.csv"], "folder.csv", ("output file folder.csv is a folder",)),
        (["--input", "rows.csv"], "note.txt/out.csv", ("note.txt is a file, not a folder",)),
        (["--input", "rows.csv"], "gone/out.csv", ("folder gone does not exist",)),
        (["--input", "rows.csv", "--by-reference"], "out6.csv", ("needs --engine queue",)),
        (
            ["--input", "rows.csv", "--engine", "queue", "--by-reference", "--timeout", "3"],
            "out7.csv",
            ("--by-reference needs a Parquet --input", "rows.csv"),
        ),
        (["--input", "nope.csv", "--engine", "spark"], "out8.csv", ("nope.csv", "does not exist")),
        (["--input", ""], "out9.csv", ("input file name is empty",)),
        (["--input", "rows.csv"], " ", ("output file name is empty",)),
    ]
    before = _files(world)
    cwd = Path.cwd()
    os.chdir(world)  # relative names, as typed
    try:
        for extra, output, needles in cases:
            args = ["predict-batch", "--model", "careless/1", *extra, "--output", output]
            _refused(runner.invoke(app, args), *needles)
    finally:
        os.chdir(cwd)
    assert _files(world) == before  # nothing written, nothing replaced, no temp file


def test_predict_batch_overwrites_only_when_asked(world: Path) -> None:
    target = world / "again.csv"
    args = ["predict-batch", "--model", "careless/1", "--input", str(world / "rows.csv")]
    first = runner.invoke(app, [*args, "--output", str(target), "-o", "json"])
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["rows"] == 40  # JSON mode: only JSON on stdout
    target.write_text("edited by hand\n")
    _refused(runner.invoke(app, [*args, "--output", str(target)]), "again.csv exists")
    assert target.read_text() == "edited by hand\n"
    replaced = runner.invoke(app, [*args, "--output", str(target), "--overwrite"])
    assert replaced.exit_code == 0, replaced.stderr
    assert len(pd.read_csv(target)) == 40


def test_models_compare_refuses_bad_data_with_exit_2(world: Path) -> None:
    compare = ["models", "compare", "careless", "1", "2", "--target", "y", "--data"]
    for name, needles in (
        ("nope.csv", ("--data file", "nope.csv", "does not exist")),
        ("folder.csv", ("folder.csv is a folder",)),
        ("empty.csv", ("empty.csv is empty",)),
        ("rows.zip", ("'.zip'", "unzip it")),
        ("rows.json", ("'.json'", "convert it to CSV or Parquet")),
        ("rows.csv", ("rows.csv", "no target column 'y'", "--target")),
    ):
        _refused(runner.invoke(app, [*compare, str(world / name)]), *needles)
    same = ["models", "compare", "careless", "1", "1", "--data", str(world / "labelled.csv")]
    _refused(runner.invoke(app, same), "two different versions")


def test_export_refuses_an_output_it_would_overwrite_or_cannot_write(world: Path) -> None:
    kept = world / "kept.onnx"
    kept.write_bytes(b"a model someone serves")
    before = _files(world)
    for output, needles in (
        (kept, ("kept.onnx exists", "--overwrite")),
        (world / "folder.csv", ("is a folder",)),
        (world / "rows.csv" / "m.onnx", ("rows.csv is a file, not a folder",)),
        (world / "gone" / "m.onnx", ("does not exist",)),
    ):
        _refused(runner.invoke(app, ["export", "careless/1", "--output", str(output)]), *needles)
    assert _files(world) == before
    # --overwrite lets the same file through to the next check: the version, here unknown
    _refused(
        runner.invoke(app, ["export", "careless/9", "--output", str(kept), "--overwrite"]),
        "no version 9",
    )


def test_an_unknown_run_prints_nothing_on_stdout(world: Path) -> None:
    for extra in ([], ["-o", "json"]):
        _refused(runner.invoke(app, ["runs", "reproduce", "0badc0de", *extra]), "0badc0de")


def test_a_scored_file_never_appears_half_written(tmp_path: Path) -> None:
    from loopml.batch.files import ScoredWriter
    from loopml.core.errors import InputFileError

    taken = tmp_path / "scored.csv"
    taken.mkdir()  # the name is taken by a folder when the file is to be renamed there
    with (
        pytest.raises(InputFileError, match=r"scored\.csv: cannot write it"),
        ScoredWriter(taken) as writer,
    ):
        writer.append(pd.DataFrame({"a": [1, 2]}))
    assert [p.name for p in tmp_path.iterdir()] == ["scored.csv"]  # no temp file left


@pytest.mark.slow
def test_ctrl_c_mid_file_leaves_no_scored_file(world: Path) -> None:
    """The real command, stdout and stderr to files: SIGINT mid-file exits 130, leaves no file."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out, err = world / "interrupted.out", world / "interrupted.err"
    command = [sys.executable, "-m", "loopml", "predict-batch", "--model", "careless/2"]
    big = world / "big.csv"
    small.frame(60_000, seed=9).to_csv(big, index=False)
    target = world / "interrupted.csv"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--input", str(big), "--output", str(target), "--batch-rows", "200"],
            stdout=stdout,
            stderr=stderr,
            cwd=world,
            env=env,
        )
        deadline = time.monotonic() + 240
        while not any(p.stat().st_size for p in world.glob(".interrupted.csv.*.tmp")):
            assert process.poll() is None, err.read_text()  # chunks scored, logged, written
            assert time.monotonic() < deadline, "no chunk was ever written"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=120)
    assert code == 130, (code, err.read_text())
    assert "Traceback" not in err.read_text() and out.read_text() == ""
    assert not target.exists() and not list(world.glob(".interrupted.csv*"))
    # the chunks scored before Ctrl-C leave the batch log with the file: none of version 2
    from loopml.store import batchlog

    engine = sa.create_engine(f"sqlite:///{world / 'loopml.db'}")
    try:
        logged = batchlog.segments(engine, model_name="careless")
    finally:
        engine.dispose()
    assert [row.job_id for row in logged if row.model_version == "2"] == []
