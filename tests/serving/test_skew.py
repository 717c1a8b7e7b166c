"""The reference profile at serving: schema skew is a 422 naming the column on every protocol,
value skew is served and recorded in the prediction log, and a rollback is followed live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from loopml.core.settings import Settings
from loopml.lifecycle import promote, rollback
from loopml.registry.models import get_version, reference_profile, register_version
from loopml.store.predictions import PredictionLog
from loopml.store.tables import Prediction
from tests.serving.conftest import (
    live_server,
    make_creditcard,
    serving_settings,
    wait_for,
    write_zip,
)

CHANNELS = ("web", "store", "phone")


def training_frame(rows: int, seed: int) -> Any:
    """Credit-card rows plus one categorical column, so the profile has a category set."""
    frame = make_creditcard(rows, positive_rate=0.1, seed=seed)
    frame.insert(0, "channel", np.random.default_rng(seed).choice(CHANNELS, rows))
    return frame


def train_profiled(settings: Settings, name: str, folder: Path) -> str:
    """Train through the engine with ``validate_data`` first; the registered version's source."""
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline

    data = write_zip(training_frame(600, 3), folder / "cc.zip")
    train = {
        "modeling_params": {"estimator_list": ["lr"], "fold": 2, "session_id": 1},
        "finalize": False,
    }
    steps = [
        {"load_data_from_file": {"path": str(data)}},
        {"validate_data": {}},
        {"train_model": train},
        {"register_model": {}},
    ]
    spec = {
        "pipeline": [{"MLSteps": steps}],
        "experiment_config": {
            "experiment_name": f"exp-{name}",
            "model_name": name,
            "main_metric": "F1",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    run_pipeline(parse_spec(json.dumps(spec)), settings)
    assert reference_profile(settings, name, "1") is not None
    return str(get_version(settings, name, "1").source)


@pytest.fixture(scope="module")
def profiled(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    folder = tmp_path_factory.mktemp("profiled")
    settings = serving_settings(folder / "home", tracking_uri, f"sqlite:///{folder / 'log.db'}")
    name = "fraud_profiled"
    train_profiled(settings, name, folder)
    return settings, name


def rows(n: int, seed: int = 21) -> list[dict[str, Any]]:
    frame = training_frame(n, seed).drop(columns=["Class"])
    return [
        {k: (v if isinstance(v, str) else float(v)) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _split(records: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(records[0])
    return {
        "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in records]}
    }


def _v2(records: list[dict[str, Any]], *outputs: str) -> dict[str, Any]:
    inputs = []
    for column in records[0]:
        values = [r[column] for r in records]
        datatype = "BYTES" if isinstance(values[0], str) else "FP64"
        inputs.append(
            {"name": column, "shape": [len(values)], "datatype": datatype, "data": values}
        )
    body: dict[str, Any] = {"inputs": inputs, "parameters": {"content_type": "pd"}}
    if outputs:
        body["outputs"] = [{"name": output} for output in outputs]
    return body


def _post(
    client: httpx.Client, protocol: str, name: str, records: list[dict[str, Any]]
) -> httpx.Response:
    if protocol == "predict":
        return client.post("/predict", json=records)
    if protocol == "invocations":
        return client.post("/invocations", json=_split(records))
    return client.post(f"/v2/models/{name}/infer", json=_v2(records))


def _message(reply: httpx.Response) -> str:
    body = reply.json()
    return str(body.get("error") or body.get("message"))


PROTOCOLS = ("predict", "invocations", "v2")


def test_schema_skew_is_a_422_naming_the_column_on_every_protocol(
    profiled: tuple[Settings, str],
) -> None:
    settings, name = profiled
    with (
        live_server(settings, f"{name}@champion") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        good = rows(2)
        for protocol in PROTOCOLS:
            assert _post(client, protocol, name, good).status_code == 200, protocol

            extra = [{**row, "coupon": 1.0} for row in good]
            reply = _post(client, protocol, name, extra)
            assert reply.status_code == 422, (protocol, reply.text)
            assert "'coupon'" in _message(reply) and "extra column" in _message(reply), reply.text

            retyped = [{**row, "Amount": "twelve"} for row in good]
            reply = _post(client, protocol, name, retyped)
            assert reply.status_code == 422, (protocol, reply.text)
            assert "Amount" in _message(reply) and "twelve" in _message(reply), reply.text

            numbers = [{**row, "channel": 3.0} for row in good]
            reply = _post(client, protocol, name, numbers)
            assert reply.status_code == 422, (protocol, reply.text)
            assert "channel" in _message(reply) and "string" in _message(reply), reply.text

            missing = [{k: v for k, v in row.items() if k != "V1"} for row in good]
            reply = _post(client, protocol, name, missing)
            assert reply.status_code == 422 and "V1" in _message(reply), (protocol, reply.text)

        # the target column is not an extra column (clients may send labelled rows)
        labelled = [{**row, "Class": 0.0} for row in good]
        assert client.post("/predict", json=labelled).status_code == 200
        described = client.get("/metadata").json()["model"]["reference_profile"]
        assert described["columns"] == 31


def test_value_skew_is_served_and_recorded_in_the_prediction_log(
    profiled: tuple[Settings, str],
) -> None:
    settings, name = profiled
    seen = rows(600, seed=3)  # the training rows: no value skew by construction
    plain = seen[10]
    odd = seen[20] | {"Amount": 1e9, "channel": "kiosk"}
    with (
        live_server(settings, f"{name}@champion") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        ids = {}
        for key, protocol, row in (
            ("odd", "predict", odd),
            ("odd_v2", "v2", odd),
            ("plain", "predict", plain),
        ):
            if protocol == "v2":
                body = _v2([row], "predict", "prediction_id")
                reply = client.post(f"/v2/models/{name}/infer", json=body)
            else:
                reply = _post(client, protocol, name, [row])
            assert reply.status_code == 200, reply.text
            if protocol == "predict":
                ids[key] = reply.json()["predictions"][0]["id"]
            else:
                outputs = {o["name"]: o["data"] for o in reply.json()["outputs"]}
                ids[key] = outputs["prediction_id"][0]
        # a 20-row request with 2 rows out of range: each of its predictions carries the skew
        many = seen[100:120]
        many[3] = many[3] | {"Amount": 1e9}
        many[7] = many[7] | {"Amount": -5.0}
        reply = client.post("/invocations", json=_split(many))
        assert reply.status_code == 200, reply.text
        batch = client.post("/predict", json=many).json()["predictions"]
        ids |= {f"many{i}": row["id"] for i, row in enumerate(batch)}

    log = PredictionLog.open(settings.database)
    try:

        def logged() -> dict[str, Any]:
            query = sa.select(Prediction.id, Prediction.skew).where(Prediction.id.in_(ids.values()))
            with log.engine.connect() as connection:
                found = {row[0]: row[1] for row in connection.execute(query)}
            return found if len(found) == len(ids) else {}

        skews = wait_for(logged)
    finally:
        log.engine.dispose()
    assert skews[ids["plain"]] is None
    for key in ("odd", "odd_v2"):
        issues = {(i["column"], i["what"]) for i in skews[ids[key]]["value_issues"]}
        assert issues == {("Amount", "out_of_range"), ("channel", "unseen_category")}, key
        assert skews[ids[key]]["rows"] == 1
    for i in range(20):
        skew = skews[ids[f"many{i}"]]
        assert skew["rows"] == 20 and len(skew["value_issues"]) == 1, skew
        issue = skew["value_issues"][0]
        assert (issue["column"], issue["what"], issue["rate"]) == ("Amount", "out_of_range", 0.1)


def test_rollback_restores_the_previous_champion_and_a_running_server_follows_it(
    profiled: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, trained = profiled
    settings = serving_settings(
        tmp_path / "home", settings.tracking_uri, f"sqlite:///{tmp_path / 'log.db'}"
    )
    name = "fraud_rollback"
    source = str(get_version(settings, trained, "1").source)
    first = register_version(settings, source, name, {}).version
    second = register_version(settings, source, name, {}).version
    promote(settings, name, first, reason="first champion", actor="test")

    def version(client: httpx.Client) -> str:
        reply = client.post("/predict", json=rows(1))
        assert reply.status_code == 200, reply.text
        return str(reply.json()["model"]["version"])

    with (
        live_server(settings, f"{name}@champion") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        assert version(client) == first
        promote(settings, name, second, reason="better", actor="test")
        wait_for(lambda: version(client) == second)
        # the swapped-in version brought its own profile: schema skew is still refused
        extra = client.post("/predict", json=[rows(1)[0] | {"coupon": 1.0}])
        assert extra.status_code == 422 and "coupon" in extra.text

        rollback(settings, name, reason="v2 misbehaves", actor="test")
        wait_for(lambda: version(client) == first)
        assert client.get("/metadata").json()["swaps"] == 2
