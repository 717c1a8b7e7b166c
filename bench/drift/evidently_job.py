"""Evidently's DataDriftPreset on the benchmark's Parquet files; runs in bench/.venvs/evidently.

Prints one JSON line: read and compute seconds, and each column's method, score and verdict.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

P_VALUE_TESTS = ("K-S", "chi-square", "Z-test", "p_value")


def main() -> None:
    reference_path, current_path, numeric, categorical = sys.argv[1:5]
    started = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    read = time.perf_counter() - started
    definition = DataDefinition(
        numerical_columns=numeric.split(","), categorical_columns=categorical.split(",")
    )
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    compute = time.perf_counter() - started
    columns = {}
    for metric in snapshot.dict()["metrics"]:
        found = re.match(
            r"ValueDrift\(column=(.+),method=(.+),threshold=(.+)\)", metric["metric_name"]
        )
        if not found:
            continue
        name, method, threshold = found.group(1), found.group(2), float(found.group(3))
        score = float(metric["value"])
        p_value = any(word in method for word in P_VALUE_TESTS)
        drifted = score < threshold if p_value else score >= threshold
        columns[name] = {"method": method, "score": score, "drifted": drifted}
    print(json.dumps({"read_s": read, "compute_s": compute, "columns": columns}))


if __name__ == "__main__":
    main()
