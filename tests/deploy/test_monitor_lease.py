"""The scheduled monitor never runs two passes of one model at once, across replicas.

Races for the lease row from many threads (each its own connection) on SQLite and
PostgreSQL; then two real ``loopml monitor --every`` processes on one model: only the
holder runs passes, no two recorded passes overlap, and after the holder is SIGKILLed
the other takes over, but not before the dead holder's lease has expired.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.store.leases import LeaseStore, PassView
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, fresh_postgres_database, require_service
from tests.deploy.services import base_env
from tests.queue.helpers import wait_for


def test_of_many_racers_exactly_one_takes_a_free_lease(database_url: str) -> None:
    stores = [LeaseStore.open(database_url) for _ in range(6)]
    try:
        for round_ in range(8):
            model = f"race-{round_}-{uuid.uuid4().hex[:6]}"
            barrier = threading.Barrier(len(stores))
            won: list[str] = []

            def race(
                i: int,
                store: LeaseStore,
                model: str = model,
                barrier: threading.Barrier = barrier,
                won: list[str] = won,
            ) -> None:
                barrier.wait()
                if store.acquire(model, f"holder-{i}", timedelta(seconds=30)):
                    won.append(f"holder-{i}")

            threads = [threading.Thread(target=race, args=(i, s)) for i, s in enumerate(stores)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert len(won) == 1, won
            lease = stores[0].lease(model)
            assert lease is not None and lease.holder == won[0]
    finally:
        for store in stores:
            store.close()


def test_a_live_lease_is_kept_renewed_released_and_taken_after_expiry(database_url: str) -> None:
    store = LeaseStore.open(database_url)
    try:
        model = f"lease-{uuid.uuid4().hex[:6]}"
        assert store.acquire(model, "a", timedelta(seconds=30))
        assert not store.acquire(model, "b", timedelta(seconds=30))
        first = store.lease(model)
        assert store.acquire(model, "a", timedelta(seconds=60))  # renewal by the holder
        renewed = store.lease(model)
        assert first and renewed and renewed.expires_at > first.expires_at
        assert renewed.acquired_at == first.acquired_at
        assert not store.release(model, "b"), "only the holder releases"
        assert store.release(model, "a")
        assert store.acquire(model, "b", timedelta(seconds=0.5)), "released: free at once"
        assert not store.acquire(model, "a", timedelta(seconds=30))
        time.sleep(0.7)  # b died without releasing; its lease runs out
        assert store.acquire(model, "a", timedelta(seconds=30))
        taken = store.lease(model)
        assert taken is not None and taken.holder == "a"
    finally:
        store.close()


def _overlapping(passes: list[PassView], killed_at: dict[str, float]) -> list[tuple[int, int]]:
    """Pairs of passes whose [start, end] intersect; a pass cut by SIGKILL ends at the kill."""
    spans = []
    for item in passes:
        end = item.finished_at.timestamp() if item.finished_at else killed_at[item.holder]
        spans.append((item.started_at.timestamp(), end, item.id))
    spans.sort()
    return [(a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]


class Monitor:
    """``loopml monitor --every`` in its own process group."""

    def __init__(self, folder: Path, env: dict[str, str], args: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "monitor.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loopml", "monitor", *args],
                cwd=folder,
                env={**base_env(), **env, "LOOPML_HOME": str(folder / "home")},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def owns(self, holder: str) -> bool:
        return holder.split(":")[-2] == str(self.process.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_scheduled_monitors_one_model_one_runs_and_the_other_takes_over(
    tmp_path: Path,
) -> None:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    rng = np.random.default_rng(3)
    reference = tmp_path / "reference.csv"
    pd.DataFrame(
        {"a": rng.normal(size=300), "b": rng.normal(size=300), "Class": rng.integers(0, 2, 300)}
    ).to_csv(reference, index=False)
    model = "lease_model"
    args = [model, "--reference", str(reference), "--target", "Class"]
    args += ["--no-champion", "--no-retrain", "--every", "0.3"]
    ttl = 5.0
    with fresh_postgres_database("lease") as database:
        from loopml.store.db import connect

        connect(database).dispose()
        env = {
            "LOOPML_DATABASE_URL": database,
            "LOOPML_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "LOOPML_MONITOR_LEASE_S": str(ttl),
        }
        store = LeaseStore.open(database)
        first = Monitor(tmp_path / "first", env, args)
        second: Monitor | None = None
        monitors = [first]
        try:
            wait_for(
                lambda: first.process.poll() is None and len(store.passes(model)) >= 3,
                timeout=120,
                what="the first monitor's passes",
            )
            second = Monitor(tmp_path / "second", env, args)
            monitors.append(second)
            # The second is up and has asked for the lease several times, in vain.
            wait_for(
                lambda: second.output().count("skipped:") >= 5,
                timeout=120,
                what="the second monitor to find the lease held",
            )
            before_kill = store.passes(model)
            assert before_kill and all(first.owns(p.holder) for p in before_kill)
            lease = store.lease(model)
            assert lease is not None and first.owns(lease.holder)

            first.signal(signal.SIGKILL)
            first.process.wait(timeout=30)
            killed = time.time()
            dead_lease = store.lease(model)
            assert dead_lease is not None and first.owns(dead_lease.holder)

            wait_for(
                lambda: any(second.owns(p.holder) for p in store.passes(model)),
                timeout=ttl * 6 + 60,
                what="the second monitor to take over",
            )
            wait_for(
                lambda: sum(second.owns(p.holder) for p in store.passes(model)) >= 3,
                timeout=60,
                what="the second monitor's passes",
            )
            passes = store.passes(model)
            taken_over = [p for p in passes if second.owns(p.holder)]
            # Not one pass of the second before the dead holder's lease ran out.
            assert taken_over[0].started_at >= dead_lease.expires_at, (
                taken_over[0],
                dead_lease,
            )
            assert all(second.owns(p.holder) for p in passes[passes.index(taken_over[0]) :])
            holders = {p.holder for p in passes}
            assert len(holders) == 2, holders
            assert not _overlapping(passes, {h: killed for h in holders})
            assert sum(first.owns(p.holder) for p in passes) >= 3

            # A graceful stop (SIGTERM, as a container runtime sends) hands the lease back:
            # a one-shot monitor gets it at once.
            second.signal(signal.SIGTERM)
            assert second.process.wait(timeout=60) == 0, second.output()[-2000:]
            released = store.lease(model)
            assert released is not None and second.owns(released.holder)
            assert released.expires_at.timestamp() <= time.time()
            stopped_with = len(store.passes(model))
            once = subprocess.run(
                [sys.executable, "-m", "loopml", "monitor", *args[:-2]],
                env={**base_env(), **env, "LOOPML_HOME": str(tmp_path / "once")},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert once.returncode == 0, once.stdout + once.stderr
            assert "skipped" not in once.stdout + once.stderr
            assert len(store.passes(model)) == stopped_with + 1
            last = store.passes(model)[-1]
            assert not (first.owns(last.holder) or second.owns(last.holder))
            assert last.status == "succeeded"
        finally:
            for monitor in monitors:
                if monitor.process.poll() is None:
                    monitor.signal(signal.SIGKILL)
                    monitor.process.wait(timeout=30)
            store.close()
