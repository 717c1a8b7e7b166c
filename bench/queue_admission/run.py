"""Admission benchmark: what checking a delivery costs the worker's main process.

    .venv/bin/python bench/queue_admission/run.py [--rows 10000] [--repeat 50]

The anchor is what Celery's consumer does with every delivery anyway: decode
the body (kombu's JSON) to build its request. Measured side by side on the
same messages: a training message (a 2 KB spec) and a scoring batch of
``--rows`` rows of 30 floats, each as (a) Celery's decode alone and (b)
``examine`` followed by Celery's read of the payload, which reuses the body
``examine`` decoded (kombu memoizes it).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from kombu.message import Message

from loopml.queue.admission import examine
from loopml.queue.topology import SCORE_TASK, TRAIN_TASK

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def message(task: str, task_id: str, kwargs: dict[str, Any]) -> Callable[[], Message]:
    body = json.dumps([[], kwargs, EMBED]).encode()
    headers = {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0}

    def fresh() -> Message:
        return Message(
            body=body,
            content_type="application/json",
            content_encoding="utf-8",
            headers=dict(headers),
            delivery_info={"routing_key": "training", "redelivered": False},
        )

    return fresh


def median(func: Callable[[], object], make: Callable[[], Message], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        item = make()
        start = time.perf_counter()
        func(item)  # type: ignore[call-arg]
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(3)
    job = "a" * 32
    spec = json.dumps({"pipeline": [{"MLSteps": [{"x": {"p": "y" * 40}}] * 40}]})
    batch = {
        "job_id": job,
        "batch_id": f"{job}-000001",
        "model": "m/1",
        "columns": [f"c{i}" for i in range(30)],
        "rows": [[rng.random() for _ in range(30)] for _ in range(args.rows)],
    }
    cases = {
        "training message": message(TRAIN_TASK, job, {"job_id": job, "spec": spec}),
        f"batch of {args.rows} rows": message(SCORE_TASK, batch["batch_id"], batch),
    }
    print(f"{'message':<24}{'celery decode':>16}{'admission+decode':>20}{'ratio':>8}")
    for name, make in cases.items():
        anchor = median(lambda m: m.payload, make, args.repeat)
        checked = median(lambda m: (examine(m), m.payload), make, args.repeat)
        print(
            f"{name:<24}{anchor * 1e3:>13.3f} ms{checked * 1e3:>17.3f} ms{checked / anchor:>8.2f}"
        )


if __name__ == "__main__":
    main()
