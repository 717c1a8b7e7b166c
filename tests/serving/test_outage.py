"""Nothing answered is lost: `loopml serve` against a PostgreSQL that refuses, hangs, or a kill.

Each test runs a real ``loopml serve`` process on a free port with its store
behind a TCP proxy, sends 2,000 one-row predictions (a few at a time), and
breaks the store or the process part way. A second server on the same spool
dir, straight on the database, must leave the first one's journal alone while
it lives and ship it once it is gone: the test counts, by id, that every
prediction answered 200 is then in the table.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from loopml.store.predictions import PredictionLog
from loopml.store.tables import Prediction
from tests.proxy import TcpProxy
from tests.serving.conftest import Registered, sample_rows, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(400)]

TOTAL = 2_000
CONCURRENCY = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``loopml serve`` in a process of its own; the test signals it like an orchestrator would."""

    def __init__(self, home: Path, registered: Registered, database_url: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
        env.update(
            LOOPML_HOME=str(home),
            LOOPML_TRACKING_URI=registered.tracking_uri,
            LOOPML_DATABASE_URL=database_url,
            LOOPML_ARTIFACT_ROOT=(home / "artifacts").as_uri(),
            LOOPML_SERVE_LOG_FLUSH_S="0.05",
            LOOPML_TRUSTED_REGISTRARS="*",  # the session model was registered in another store
            LOOPML_SERVE_LOG_TIMEOUT_S="1",
            LOOPML_SERVE_LOG_DRAIN_S="2",
            PYTHONUNBUFFERED="1",
        )
        self._log = log.open("ab")
        command = [sys.executable, "-m", "loopml", "serve", "--model", f"{registered.name}/1"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.output = log

    def wait_ready(self) -> Server:
        def ready() -> bool:
            assert self.process.poll() is None, self.output.read_text()[-3000:]
            try:
                return httpx.get(f"{self.url}/ping", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=120, every=0.2)
        return self

    def metadata(self) -> dict[str, Any]:
        log: dict[str, Any] = httpx.get(f"{self.url}/metadata", timeout=10).json()["prediction_log"]
        return log

    def signal(self, number: int) -> int:
        """Send ``number``; its exit code (the process must end within the drain bound)."""
        self.process.send_signal(number)
        try:
            return self.process.wait(timeout=30)
        finally:
            self._log.close()

    def terminate(self) -> None:
        """SIGTERM: a graceful stop (uvicorn re-raises the signal once shut down)."""
        assert self.signal(signal.SIGTERM) in (0, -signal.SIGTERM), self.output.read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()


class Traffic:
    """Sends one-row predictions a few at a time and keeps the ids answered 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rows = sample_rows(50)
        self.answered: list[str] = []
        self.failed = 0

    def send(self, n: int, *, tolerate: bool = False) -> None:
        """``n`` requests; with ``tolerate``, failed connections (a killed server) are counted."""

        def one(i: int, client: httpx.Client) -> str | None:
            try:
                reply = client.post("/predict", json=self.rows[i % len(self.rows)])
            except httpx.TransportError:
                if not tolerate:
                    raise
                return None
            assert reply.status_code == 200, reply.text
            prediction_id: str = reply.json()["predictions"][0]["id"]
            return prediction_id

        clients = [httpx.Client(base_url=self.url, timeout=30) for _ in range(CONCURRENCY)]
        try:
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                futures = [pool.submit(one, i, clients[i % CONCURRENCY]) for i in range(n)]
                for future in futures:
                    found = future.result()
                    if found is None:
                        self.failed += 1
                    else:
                        self.answered.append(found)
        finally:
            for client in clients:
                client.close()


def _stored(url: str, ids: list[str]) -> int:
    """How many of ``ids`` the predictions table holds (counted by id, straight on the database)."""
    engine = sa.create_engine(url)
    table = Prediction.__table__
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.count()).where(table.c.id.in_(ids))
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


@contextmanager
def _scenario(
    registered: Registered, postgres_url: str, tmp_path: Path
) -> Iterator[tuple[TcpProxy, Server, Server]]:
    """A proxy; a server whose store is behind it; a second server on the same spool dir.

    Both start together (a server takes seconds to start). The second goes
    straight to the database: while the first lives, its journal is locked and
    the second must leave it alone; once the first is gone, the second is the
    "next process" that adopts and ships what the first left.
    """
    PredictionLog.open(postgres_url).engine.dispose()  # migrated before the proxy breaks
    proxy = TcpProxy("127.0.0.1", 5432).start()
    proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    home = tmp_path / "home"
    servers = [
        Server(home, registered, proxied, tmp_path / "first.log"),
        Server(home, registered, postgres_url, tmp_path / "second.log"),
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield proxy, servers[0], servers[1]
    finally:
        for server in servers:
            server.close()
        proxy.close()


def _journal_of_the_live_server_stays_put(postgres_url: str, traffic: Traffic, since: int) -> None:
    """The second server, direct on the database, did not ship the first one's live journal."""
    assert _stored(postgres_url, traffic.answered[since:]) == 0


def _all_shipped_by_the_next_server(
    server: Server, postgres_url: str, answered: list[str], spool: Path
) -> None:
    assert len(set(answered)) == len(answered)
    wait_for(lambda: _stored(postgres_url, answered) == len(answered), timeout=60, every=0.5)
    wait_for(lambda: not list(spool.glob("*.seg")), timeout=30)
    status = server.metadata()
    assert status["backlog_rows"] == 0 and status["database_up"] is True
    server.terminate()


def test_refused_for_a_third_then_sigterm(
    registered: Registered, postgres_url: str, tmp_path: Path
) -> None:
    with _scenario(registered, postgres_url, tmp_path) as (proxy, server, second):
        traffic = Traffic(server.url)
        traffic.send(TOTAL // 3)
        proxy.cut()  # connection refused
        traffic.send(TOTAL // 3)
        wait_for(lambda: server.metadata()["database_up"] is False)
        _journal_of_the_live_server_stays_put(postgres_url, traffic, TOTAL // 3)
        proxy.restore()
        traffic.send(TOTAL - 2 * (TOTAL // 3))
        server.terminate()  # drains within its bound, exits
        assert len(traffic.answered) == TOTAL
        _all_shipped_by_the_next_server(
            second, postgres_url, traffic.answered, tmp_path / "home/spool"
        )


def test_a_hang_until_the_end_then_sigterm(
    registered: Registered, postgres_url: str, tmp_path: Path
) -> None:
    with _scenario(registered, postgres_url, tmp_path) as (proxy, server, second):
        traffic = Traffic(server.url)
        traffic.send(TOTAL // 2)
        proxy.hang()  # accepts, reads, never answers
        traffic.send(TOTAL // 4)
        wait_for(lambda: server.metadata()["database_up"] is False, timeout=30)
        traffic.send(TOTAL - TOTAL // 2 - TOTAL // 4)
        status = server.metadata()
        assert status["database_up"] is False and status["backlog_rows"] > 0
        _journal_of_the_live_server_stays_put(postgres_url, traffic, TOTAL * 3 // 4)
        server.terminate()  # the hang does not hold the exit
        assert len(traffic.answered) == TOTAL
        assert _stored(postgres_url, traffic.answered) < TOTAL  # the hang held some back
        _all_shipped_by_the_next_server(
            second, postgres_url, traffic.answered, tmp_path / "home/spool"
        )


def test_refused_then_sigkill(registered: Registered, postgres_url: str, tmp_path: Path) -> None:
    with _scenario(registered, postgres_url, tmp_path) as (proxy, server, second):
        traffic = Traffic(server.url)
        traffic.send(TOTAL // 3)
        proxy.cut()
        traffic.send(TOTAL - TOTAL // 3)
        _journal_of_the_live_server_stays_put(postgres_url, traffic, TOTAL // 3)
        assert server.signal(signal.SIGKILL) == -signal.SIGKILL
        assert len(traffic.answered) == TOTAL
        assert _stored(postgres_url, traffic.answered) < TOTAL
        _all_shipped_by_the_next_server(
            second, postgres_url, traffic.answered, tmp_path / "home/spool"
        )


def test_sigkill_mid_stream_with_a_healthy_store(
    registered: Registered, postgres_url: str, tmp_path: Path
) -> None:
    with _scenario(registered, postgres_url, tmp_path) as (_, server, second):
        traffic = Traffic(server.url)

        def kill_when_half_answered() -> None:
            wait_for(lambda: len(traffic.answered) >= TOTAL // 2, timeout=200, every=0.005)
            with suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGKILL)

        with ThreadPoolExecutor(1) as pool:
            killer = pool.submit(kill_when_half_answered)
            traffic.send(TOTAL, tolerate=True)
            killer.result()
        assert server.process.wait(timeout=30) == -signal.SIGKILL
        assert TOTAL // 2 <= len(traffic.answered) < TOTAL and traffic.failed > 0
        _all_shipped_by_the_next_server(
            second, postgres_url, traffic.answered, tmp_path / "home/spool"
        )
