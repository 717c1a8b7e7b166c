"""``POST /batches`` as an attacker meets it: path escapes, hostile bodies, no key.

A real uvicorn server on a free port with the embedded broker and a SQLite
store; nothing here needs a worker or a model: every refusal happens before
anything is queued, and none may be a 5xx or carry a byte of a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loopml.core.settings import Settings
from tests.api.conftest import KEY, api_client, running_api

pytestmark = pytest.mark.timeout(120)
SECRET = "root:x:0:0:do-not-leak-this-line"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("batches")
    configured = Settings(home=folder / "home", api_keys=[KEY])  # batch roots: home/data
    root = configured.home / "data"
    root.mkdir(parents=True)
    (root / "rows.parquet").write_bytes(b"PAR1")
    (root / "notes.txt").write_text("hello")
    outside = folder / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(SECRET + "\n")
    (root / "link.csv").symlink_to(outside / "secret.csv")  # a file inside that points out
    (root / "door").symlink_to(outside)  # a folder inside that points out
    (root / "passwd.csv").symlink_to("/etc/passwd")
    return configured


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[str]:
    with running_api(settings) as url:
        yield url


def _order(**fields: Any) -> dict[str, Any]:
    return {"model": "fraud@champion", "input": "", "output": "", **fields}


def _nothing_queued(client: Any) -> bool:
    """No job but the one the cancel test queues (and cancels) was ever recorded."""
    jobs = client.get("/jobs").json()["jobs"]
    return all(job["model_name"] == "cancelled@champion" for job in jobs)


def test_paths_outside_the_batch_roots_are_refused_naming_the_roots(
    api: str, settings: Settings
) -> None:
    root = settings.home / "data"
    outside = root.parent.parent / "outside"
    good_out = str(root / "scored.parquet")
    escapes = [
        f"{root}/../../outside/secret.csv",  # .. out of the root, to a file that exists
        f"{root}/../../outside/missing.csv",  # the same, to one that does not
        "/etc/passwd",
        "/etc/no-such-file.csv",
        str(root / "link.csv"),  # a symlink inside the root pointing outside
        str(root / "door" / "secret.csv"),  # through a symlinked folder
        str(root / "passwd.csv"),
        str(outside / "secret.csv"),
        "rows.parquet",  # relative: never resolved against the server's working folder
        "~/rows.parquet",
        f"file://{root}/rows.parquet",
        "s3://bucket/rows.parquet",
        f"{root}\x00/rows.parquet",
        str(root),  # the root itself is a folder, not a file under it
    ]
    with api_client(api) as client:
        for path in escapes:
            for body in (_order(input=path, output=good_out), _order(input=path, output=path)):
                answer = client.post("/batches", json=body)
                assert answer.status_code == 403, (path, answer.text)
                detail = answer.json()["detail"]
                assert str(root) in detail and "LOOPML_BATCH_ROOTS" in detail, detail
                assert "do-not-leak" not in answer.text and "root:x:" not in answer.text
            answer = client.post(
                "/batches", json=_order(input=str(root / "rows.parquet"), output=path)
            )
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["detail"].startswith("output path")
        # whether the file outside exists changes nothing in the answer but the path itself
        answers = [
            client.post("/batches", json=_order(input=path, output=good_out)).json()["detail"]
            for path in (f"{outside}/secret.csv", f"{outside}/missing.csv")
        ]
        assert answers[0].replace("secret", "missing") == answers[1]
        assert _nothing_queued(client)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"engine": "nope"}, "no batch engine named 'nope'; known engines: local, queue, spark"),
        ({"model": "fraud@"}, "model reference"),
        ({"model": "fraud/latest"}, "latest"),
        ({"input": "notes.txt"}, "unsupported format '.txt'"),
        ({"output": "scored.json"}, "unsupported format '.json'"),
        ({"output": "rows.parquet"}, "the output path is the input file"),
    ],
    ids=["engine", "model-alias", "model-latest", "input-format", "output-format", "same-file"],
)
def test_a_bad_order_is_a_422_that_says_what_is_wrong(
    api: str, settings: Settings, fields: dict[str, Any], expected: str
) -> None:
    root = settings.home / "data"
    body = _order(input=str(root / "rows.parquet"), output=str(root / "scored.parquet"))
    for key in ("input", "output"):
        if key in fields:
            fields = {**fields, key: str(root / fields[key])}
    with api_client(api) as client:
        answer = client.post("/batches", json={**body, **fields})
        assert answer.status_code == 422, answer.text
        assert expected in answer.json()["detail"], answer.text
        assert _nothing_queued(client)


def test_hostile_bodies_are_4xx_and_the_server_lives(api: str, settings: Settings) -> None:
    root = settings.home / "data"
    good = _order(input=str(root / "rows.parquet"), output=str(root / "scored.parquet"))
    deep = ('{"a":' * 50_000 + "1" + "}" * 50_000).encode()
    bodies: list[Any] = [
        None,
        [],
        "a string",
        12,
        {},
        {**good, "model": None},
        {**good, "input": None},
        {**good, "model": 12},
        {**good, "input": ["/etc/passwd"]},
        {**good, "output": {"$ne": ""}},
        {**good, "engine": None},
        {**good, "engine": "x" * 100_000},
        {**good, "model": "m" * 1_000_000},
        {**good, "input": str(root) + "/" + "a" * 1_000_000 + ".csv"},
        {**good, "input": f"{root}/{'a' * 5_000}.csv"},
        {**good, "batch_rows": "10"},
        {**good, "batch_rows": 0},
        {**good, "batch_rows": 10**30},
        {**good, "batch_rows": 1.5},
        {**good, "batch_rows": True},
        {**good, "by_reference": "yes"},
        {**good, "master": "spark://attacker:7077"},  # not a field a client may set
    ]
    raw_bodies = [
        b"{not json",
        b'{"model": "m", "input": ' + deep + b', "output": "o.csv"}',
        b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model": "\\ud800", "input": "/a.csv", "output": "/b.csv"}',  # a lone surrogate
        b"\xff\xfe",
    ]
    with api_client(api) as client:
        for body in bodies:
            answer = client.post("/batches", json=body)
            assert 400 <= answer.status_code < 500, (str(body)[:80], answer.status_code)
        for raw in raw_bodies:
            answer = client.post(
                "/batches", content=raw, headers={"Content-Type": "application/json"}
            )
            assert 400 <= answer.status_code < 500, (raw[:40], answer.status_code)
        assert client.get("/health").status_code == 200
        assert client.get("/batches/0123456789abcdef").status_code == 404
        assert _nothing_queued(client)


def test_without_a_key_nothing_is_answered(api: str, settings: Settings) -> None:
    root = settings.home / "data"
    good = _order(input=str(root / "rows.parquet"), output=str(root / "scored.parquet"))
    with api_client(api) as client:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong-key"}):
            client.headers.update(headers)
            assert client.post("/batches", json=good).status_code == 401
            assert client.get("/batches/0123456789abcdef").status_code == 401
            # the refusal comes before the body is read: an escape learns nothing either
            escape = client.post("/batches", json=_order(input="/etc/passwd", output="/x.csv"))
            assert escape.status_code == 401 and "batch roots" not in escape.text
    with api_client(api) as client:
        assert _nothing_queued(client)


def test_a_queued_batch_answers_at_once_and_can_be_cancelled(api: str, settings: Settings) -> None:
    root = settings.home / "data"
    order = _order(
        model="cancelled@champion",
        input=f"{root}/sub/../rows.parquet",  # `..` that stays inside is fine
        output=str(root / "scored.csv"),
        engine="queue",
    )
    with api_client(api) as client:
        answer = client.post("/batches", json=order)  # no worker: it stays queued
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert (job["status"], job["kind"]) == ("queued", "batch")
        assert job["batch"]["input"] == str(root / "rows.parquet")  # the real path it reads
        assert job["batch"]["rows_scored"] == 0
        assert client.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
        shown = client.get(f"/batches/{job['id'][:8]}").json()
        assert (shown["id"], shown["status"]) == (job["id"], "cancelled")
        assert shown["batch"]["engine"] == "queue" and shown["batch"]["chunks_done"] == 0


def test_a_model_too_long_for_the_jobs_table_is_a_422(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # before: 300 characters passed validation and PostgreSQL refused the job row
    # (jobs.model_name is 255 characters): a 500
    folder = tmp_path_factory.mktemp("long-model")
    configured = Settings(home=folder / "home", api_keys=[KEY], database_url=postgres_url)
    root = configured.home / "data"
    root.mkdir(parents=True)
    body = _order(model="m" * 290 + "@a", input=str(root / "a.csv"), output=str(root / "b.csv"))
    with running_api(configured) as url, api_client(url) as client:
        answer = client.post("/batches", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "model"]


def test_an_existing_output_is_kept_unless_overwrite_is_sent(api: str, settings: Settings) -> None:
    # before: a remote order silently replaced any scored file under the roots (the CLI
    # refuses the same without --overwrite)
    root = settings.home / "data"
    kept = root / "kept.csv"
    kept.write_text("prediction\n1\n")
    order = _order(model="cancelled@champion", input=str(root / "rows.parquet"), output=str(kept))
    with api_client(api) as client:
        before = len(client.get("/jobs", params={"limit": 1000}).json()["jobs"])
        refused = client.post("/batches", json=order)
        assert refused.status_code == 409, refused.text
        assert "overwrite" in refused.json()["detail"]
        assert len(client.get("/jobs", params={"limit": 1000}).json()["jobs"]) == before
        asked = client.post("/batches", json={**order, "overwrite": True})
        assert asked.status_code == 202, asked.text
        assert client.post(f"/jobs/{asked.json()['id']}/cancel").json()["status"] == "cancelled"
    assert kept.read_text() == "prediction\n1\n"
