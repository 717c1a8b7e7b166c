"""The prediction journal: written before the answer, shipped once, adopted after a death.

Each test counts rows by id in a real store (SQLite here, PostgreSQL behind a
proxy in ``test_outage``) and files in the journal folder.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from loopml.core.settings import Settings
from loopml.serving.predlog import Label, PredictionLogger, Scored
from loopml.serving.table import Table
from loopml.store.journal import Journal
from loopml.store.predictions import LabelRecord, PredictionLog, PredictionRecord
from loopml.store.tables import Feedback
from tests.proxy import TcpProxy
from tests.serving.conftest import (
    Registered,
    live_server,
    sample_rows,
    serving_settings,
    wait_for,
)

NAMES = ("a", "b")


def _scored(first: int, n: int, version: str = "3") -> Scored:
    matrix = np.arange(first * 2, (first + n) * 2, dtype=float).reshape(n, 2)
    matrix[0, 1] = np.nan  # stored as null, not as invalid JSON
    return Scored(
        "m",
        version,
        time.time(),
        [f"{i:032x}" for i in range(first, first + n)],
        Table(NAMES, n, matrix=matrix),
        [1] * n,
        [[0.25, 0.75]] * n,
        ["0", "1"],
        1.5,
    )


def _segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("predictions-*.seg"))


def _entry(i: int) -> bytes:
    record = PredictionRecord(f"{i:032x}", "m", "1", {"a": float(i)}, {"prediction": 0})
    return orjson.dumps(record.to_entry()) + b"\n"


def _labels(log: PredictionLog) -> list[tuple[str, str | None, object]]:
    table = Feedback.__table__
    query = sa.select(table.c.prediction_id, table.c.model_version, table.c.label)
    with log.engine.connect() as connection:
        return [(row[0], row[1], row[2]["label"]) for row in connection.execute(query)]


def test_predictions_are_on_disk_when_log_returns_and_shipped_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    spool = tmp_path / "spool"
    log = PredictionLog.open(url)
    logger = PredictionLogger(url, spool, flush_s=0.05)
    logger.start()
    try:
        logger.log(_scored(0, 3))
        # before any shipping could matter: the rows are in a segment file already
        on_disk = b"".join(path.read_bytes() for path in _segments(spool))
        assert all(f"{i:032x}".encode() in on_disk for i in range(3))
        assert logger.status()["backlog_rows"] in (0, 3)  # 0 once shipped
        logger.log(_scored(3, 3))
        logger.log(Label(f"{1:032x}", "fraud", time.time()))
        wait_for(lambda: log.count(model_name="m") == 6)
        wait_for(lambda: log.labels([f"{1:032x}"]) == {f"{1:032x}": "fraud"})
        wait_for(lambda: not _segments(spool) and logger.status()["backlog_rows"] == 0)
        frame = next(log.frames("m"))
        first = frame.set_index("prediction_id").loc[f"{0:032x}"]
        assert first["a"] == 0.0
        assert first["b"] is None or np.isnan(first["b"])
        assert first["probabilities"] == {"0": 0.25, "1": 0.75}
        assert _labels(log) == [(f"{1:032x}", "3", "fraud")]  # tied to the version
        assert logger.status()["database_up"] is True
    finally:
        logger.stop()
    assert log.count() == 6


def test_feedback_for_an_unknown_prediction_is_never_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    spool = tmp_path / "spool"
    log = PredictionLog.open(url)
    logger = PredictionLogger(url, spool, flush_s=0.05, label_grace_s=0.5)
    logger.start()
    try:
        logger.log(Label("f" * 32, 1, time.time()))  # no such prediction, ever
        logger.log(Label(f"{7:032x}", 0, time.time()))  # its prediction comes later
        time.sleep(0.2)
        logger.log(_scored(7, 1, version="5"))
        wait_for(lambda: logger.status()["labels_rejected"] == 1)
        wait_for(lambda: not _segments(spool))
    finally:
        logger.stop()
    assert _labels(log) == [(f"{7:032x}", "5", 0)]
    rejected = [
        orjson.loads(line) for line in logger.journal.rejected_path.read_bytes().splitlines()
    ]
    assert [r["entry"]["prediction_id"] for r in rejected] == ["f" * 32]
    assert "does not hold" in rejected[0]["reason"]
    assert log.add_feedback("e" * 32, 1) is False and len(_labels(log)) == 1


def test_a_dead_process_journal_with_a_torn_last_line_is_adopted(tmp_path: Path) -> None:
    """A process killed mid-write: its complete lines are shipped, the torn one kept aside."""
    spool = tmp_path / "spool"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from loopml.store.journal import Journal\n"
        "journal = Journal(Path(sys.argv[1])).open()\n"
        "journal.append(sys.stdin.buffer.read(), 50, None)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    lines = b"".join(_entry(i) for i in range(50)) + _entry(50)[:40]  # torn last line
    dead = subprocess.run([sys.executable, "-c", script, str(spool)], input=lines, check=False)
    assert dead.returncode == -signal.SIGKILL
    assert len(_segments(spool)) == 1 and len(list(spool.glob("*.lock"))) == 1
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog.open(url)
    logger = PredictionLogger(url, spool, flush_s=0.05)
    logger.start()
    try:
        wait_for(lambda: log.count() == 50)
        wait_for(lambda: not _segments(spool))
        wait_for(lambda: logger.status()["unreadable_lines"] == 1)
    finally:
        logger.stop()
    assert all(log.exists(f"{i:032x}") for i in range(50)) and not log.exists(f"{50:032x}")
    kept = logger.journal.rejected_path.read_text()
    assert "unreadable line" in kept
    assert not list(spool.glob("*.lock"))  # adopted owner's lock removed, ours released


def test_a_live_process_journal_is_never_shipped_by_another(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    alive = Journal(spool).open()
    alive.append(_entry(1), 1, None)
    alive.seal()
    other = Journal(spool).open()
    other.adopt()
    assert other.backlog().rows == 0  # the live owner's lock is held
    shipped: list[object] = []
    report = other.ship(lambda entries: shipped.extend(entries) or [])
    assert report.segments == 0 and not shipped and len(_segments(spool)) == 1
    other.close()
    alive.close()  # gone now, its segment still there
    late = Journal(spool).open()
    late.adopt()
    assert late.backlog().rows == 1
    report = late.ship(lambda entries: shipped.extend(entries) or [])
    assert report.shipped == 1 and not _segments(spool)
    late.close()


def test_malformed_entries_are_kept_aside_and_the_rest_shipped(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    # a segment of an owner that is gone (no lock file at all)
    bad = b'{"k": "p", "id": 5}\n[1, 2]\n{"k": "f", "prediction_id": null}\n'
    (spool / "predictions-1.00000000-00000001.seg").write_bytes(_entry(1) + bad + _entry(2))
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog.open(url)
    logger = PredictionLogger(url, spool, flush_s=0.05)
    logger.start()
    try:
        wait_for(lambda: log.count() == 2 and not _segments(spool))
    finally:
        logger.stop()
    kept = logger.journal.rejected_path.read_bytes().splitlines()
    assert len(kept) == 3


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_a_hung_store_fails_within_the_bound_and_counts_as_down(
    postgres_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    spool = tmp_path / "spool"
    direct = PredictionLog.open(postgres_url)
    logger = PredictionLogger(proxied, spool, flush_s=0.05, timeout_s=1.0, drain_s=1.0)
    logger.start()
    ids = [f"{i:032x}" for i in range(1000, 1010)]
    try:
        logger.log(_scored(1000, 5))
        wait_for(lambda: all(direct.exists(i) for i in ids[:5]))
        proxy.hang()  # open connections and new ones: accepted, never answered
        logger.log(_scored(1005, 5))
        logger.log(Label(ids[0], 1, time.time()))
        wait_for(lambda: logger.status()["database_up"] is False)
        assert logger.status()["backlog_rows"] >= 6
        assert not any(direct.exists(i) for i in ids[5:])
    finally:
        logger.stop()  # bounded: the shipper gives up after drain_s
        proxy.close()
    assert not logger.shipper._thread.is_alive()
    assert _segments(spool)  # what the hang held back is still journaled
    # the next process ships it
    after = PredictionLogger(postgres_url, spool, flush_s=0.05)
    after.start()
    try:
        wait_for(lambda: all(direct.exists(i) for i in ids) and not _segments(spool))
        wait_for(lambda: direct.labels([ids[0]]) == {ids[0]: 1})
    finally:
        after.stop()
        direct.engine.dispose()


def test_label_records_round_trip_through_the_journal() -> None:
    label = LabelRecord("a" * 32, {"nested": [1, 2]})
    assert LabelRecord.from_entry(orjson.loads(orjson.dumps(label.to_entry()))) == label


def test_journal_off_logs_nothing(tmp_path: Path) -> None:
    logger = PredictionLogger(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "spool", enabled=False)
    logger.start()
    logger.log(_scored(0, 2))
    logger.stop()
    assert not (tmp_path / "spool").exists() and logger.status()["enabled"] is False


@pytest.mark.parametrize("value", ["k1,k2", " k1 , k2 ,"])
def test_api_keys_come_comma_separated(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_SERVE_API_KEYS", value)
    monkeypatch.setenv("LOOPML_SERVE_BATCH_WAIT_MS", "0.5")
    settings = Settings()
    assert settings.serve_api_keys == ["k1", "k2"]
    assert settings.serve_batch_wait_ms == 0.5
    assert settings.spool_dir == settings.home / "spool"


@pytest.mark.postgres
def test_metadata_and_metrics_show_the_journal_backlog(
    registered: Registered, postgres_url: str, tmp_path: Path
) -> None:
    """While the store refuses, /metadata and /metrics count what waits and how old it is."""
    PredictionLog.open(postgres_url).engine.dispose()
    proxy = TcpProxy("127.0.0.1", 5432).start()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = serving_settings(tmp_path / "home", registered.tracking_uri, proxied)
    direct = PredictionLog.open(postgres_url)
    rows = sample_rows(3)
    try:
        with (
            live_server(settings, f"{registered.name}/1") as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            proxy.cut()
            ids: list[str] = []
            for _ in range(4):
                reply = client.post("/predict", json=rows)
                ids += [p["id"] for p in reply.json()["predictions"]]
            assert client.post("/feedback", json={"prediction_id": ids[0], "label": 1}).is_success
            status = wait_for(
                lambda: (
                    (s := client.get("/metadata").json()["prediction_log"])["database_up"] is False
                    and s
                )
            )
            assert status["backlog_rows"] == 13 and status["backlog_segments"] >= 1
            assert status["oldest_unshipped_age_s"] > 0 and status["last_error"]
            metrics = client.get("/metrics").text
            assert "loopml_prediction_journal_backlog_rows 13.0" in metrics
            assert "loopml_prediction_store_up 0.0" in metrics
            assert "loopml_prediction_journal_oldest_unshipped_age_seconds" in metrics
            assert not any(direct.exists(i) for i in ids)

            proxy.restore()
            wait_for(lambda: client.get("/metadata").json()["prediction_log"]["backlog_rows"] == 0)
            status = client.get("/metadata").json()["prediction_log"]
            assert status["database_up"] is True and status["oldest_unshipped_age_s"] is None
            assert "loopml_prediction_journal_backlog_rows 0.0" in client.get("/metrics").text
            assert all(direct.exists(i) for i in ids)
            assert direct.labels([ids[0]]) == {ids[0]: 1}
    finally:
        proxy.close()
        direct.engine.dispose()


@pytest.mark.postgres
@pytest.mark.timeout(60)
@pytest.mark.parametrize("at_commit", [False, True], ids=["mid_transaction", "at_commit"])
def test_a_store_that_hangs_errors_out(postgres_url: str, at_commit: bool) -> None:
    """Connected first, then the store stops answering, before a statement or at the COMMIT
    (read and never answered): the watchdog ends the call either way."""
    from loopml.store.bounded import bounded

    PredictionLog.open(postgres_url).engine.dispose()
    proxy = TcpProxy("127.0.0.1", 5432).start()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    log = PredictionLog.open(proxied, timeout_s=1.0)
    try:
        with (
            pytest.raises(sa.exc.OperationalError),
            bounded(log.engine, log.timeout_s) as connection,
        ):
            connection.execute(sa.text("SELECT 1"))
            proxy.hang()
            if not at_commit:
                connection.execute(sa.text("SELECT pg_sleep(0)"))  # never answered
    finally:
        proxy.close()
        log.engine.dispose()


def test_a_journal_that_cannot_be_written_refuses_the_answer(tmp_path: Path) -> None:
    """Disk full: ``log`` raises JournalError (the server's 503), never returns as if logged."""
    import os

    from loopml.core.errors import JournalError

    url = f"sqlite:///{tmp_path / 'log.db'}"
    logger = PredictionLogger(url, tmp_path / "spool", flush_s=0.05)
    logger.start()
    full = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC
    try:
        logger.log(_scored(0, 1))  # opens the active segment
        active = logger.journal._fd
        assert active is not None
        os.dup2(full, active)
        with pytest.raises(JournalError, match="cannot write the prediction journal"):
            logger.log(_scored(1, 1))
        assert logger.journaled == 1
    finally:
        os.close(full)
        logger.stop()


def test_any_malformed_request_entry_is_kept_aside_not_a_poisoned_segment(
    tmp_path: Path,
) -> None:
    # before: an entry whose probabilities list is shorter than its ids raised IndexError,
    # which the shipper did not treat as malformed: the segment was retried forever and
    # every segment after it stayed unshipped
    spool = tmp_path / "spool"
    spool.mkdir()
    request = {
        "k": "r",
        "t": 1.0,
        "ids": ["f" * 32],
        "model_name": "m",
        "model_version": "1",
        "columns": ["a"],
        "matrix": [[1.0]],
        "predictions": [1],
        "probabilities": [],
        "classes": ["0", "1"],
    }
    short_probabilities = orjson.dumps(request) + b"\n"
    garbage = b"\x00\xff\xfe garbage \x80\n"
    far_future = orjson.dumps({**request, "probabilities": [[0.5, 0.5]], "t": 1e30}) + b"\n"
    (spool / "predictions-1.00000000-00000001.seg").write_bytes(
        _entry(1) + short_probabilities + garbage + far_future + _entry(2)
    )
    (spool / "predictions-1.00000000-00000002.seg").write_bytes(_entry(3))
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog.open(url)
    logger = PredictionLogger(url, spool, flush_s=0.05)
    logger.start()
    try:
        wait_for(lambda: log.count() == 3 and not _segments(spool))
    finally:
        logger.stop()
    assert not log.exists("f" * 32)
    assert len(logger.journal.rejected_path.read_bytes().splitlines()) == 3


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_value_postgres_refuses_in_a_bulk_segment_is_kept_aside(
    postgres_url: str, tmp_path: Path
) -> None:
    # before: a segment of 500 rows or more ships through COPY, whose driver errors were
    # not SQLAlchemy's; a value PostgreSQL refuses (a NUL in a text column) was then
    # neither "store down" nor "refused": the segment was retried forever and every
    # segment after it stayed unshipped
    spool = tmp_path / "spool"
    spool.mkdir()
    poisoned = PredictionRecord("e" * 32, "m\x00", "1", {"a": 1.0}, {"prediction": 0})
    records = [
        PredictionRecord(f"b{i:031x}", "m", "1", {"a": float(i)}, {"prediction": 0})
        for i in range(600)
    ]
    lines = [orjson.dumps(r.to_entry()) + b"\n" for r in [*records, poisoned]]
    (spool / "predictions-1.00000000-00000001.seg").write_bytes(b"".join(lines[1:]))
    (spool / "predictions-1.00000000-00000002.seg").write_bytes(lines[0])
    log = PredictionLog.open(postgres_url)
    before = log.count()
    logger = PredictionLogger(postgres_url, spool, flush_s=0.05)
    logger.start()
    try:
        wait_for(lambda: log.count() - before == 600 and not _segments(spool), timeout=90)
    finally:
        logger.stop()
        log.engine.dispose()
    kept = [orjson.loads(line) for line in logger.journal.rejected_path.read_bytes().splitlines()]
    assert [k["entry"]["id"] for k in kept] == ["e" * 32]
    assert "refused by the store" in kept[0]["reason"]


def test_a_label_older_than_the_grace_waits_for_its_prediction_to_ship(tmp_path: Path) -> None:
    # before: the grace ran from the label's creation, so after an outage longer than
    # label_grace_s a label journaled by one server process was rejected for good when
    # it shipped before its prediction, journaled by another (--workers 2, or a process
    # that was killed and adopted): the label was lost although its prediction arrived
    spool = tmp_path / "spool"
    spool.mkdir()
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog.open(url)
    logger = PredictionLogger(url, spool, flush_s=0.05, label_grace_s=2.0)
    prediction = f"{7:032x}"
    # the label, written during an outage an hour ago, in this process's own journal...
    logger.log(Label(prediction, 1, time.time() - 3600))
    # ...its prediction in the journal of a process that is gone, adopted and shipped after
    (spool / "predictions-1.00000000-00000001.seg").write_bytes(_entry(7))
    logger.start()
    try:
        wait_for(lambda: log.exists(prediction) and not _segments(spool))
        wait_for(lambda: len(_labels(log)) == 1 or logger.labels_rejected > 0)
    finally:
        logger.stop()
    assert logger.labels_rejected == 0
    assert _labels(log) == [(prediction, "1", 1)]
    # a label whose prediction never comes is still kept aside once the grace has passed
    late = PredictionLogger(url, spool, flush_s=0.05, label_grace_s=0.5)
    late.log(Label("e" * 32, 0, time.time()))
    late.start()
    try:
        wait_for(lambda: late.labels_rejected == 1)
    finally:
        late.stop()
    assert len(_labels(log)) == 1
