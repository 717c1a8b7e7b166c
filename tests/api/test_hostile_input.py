"""The jobs API fed what an attacker sends: parser bombs, LIKE wildcards for job ids, secrets.

A real uvicorn server on a free port with the embedded broker and a SQLite
store, so nothing here needs a shared service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.core.settings import Settings
from loopml.core.spec import parse_spec
from loopml.store.jobs import TRAINING, JobStore
from tests.api.conftest import KEY, api_client, running_api
from tests.bombs import yaml_alias_bomb

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "data").mkdir()
    return Settings(home=folder / "home", api_keys=[KEY], data_roots=[folder / "data"])


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[str]:
    with running_api(settings) as url:
        yield url


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        "a:\n" + "".join("  " * depth + "- \n" for depth in range(1, 2000)),
        yaml_alias_bomb(),
    ],
    ids=["json-lists", "json-objects", "yaml-block", "alias-bomb"],
)
def test_parser_bombs_are_answered_422_and_the_server_lives(api: str, text: str) -> None:
    # before: the JSON ones were a 500 (RecursionError in json5) or a reset connection,
    # and the alias bomb was walked for seconds
    with api_client(api) as client:
        before = client.get("/jobs").json()["jobs"]
        started = time.monotonic()
        answer = client.post("/jobs", json={"spec": text})
        assert answer.status_code == 422, answer.text[:300]
        assert "nested deeper than 64 levels" in answer.text
        assert time.monotonic() - started < 30
        assert client.get("/health").status_code == 200
        assert client.get("/jobs").json()["jobs"] == before  # nothing was queued


def test_like_wildcards_in_a_job_id_match_nothing(api: str, settings: Settings) -> None:
    store = JobStore(settings.database)
    try:
        store.create("a1b2c3d4-only-job", kind=TRAINING, queue="q", spec_text="{}")
    finally:
        store.close()
    with api_client(api) as client:
        assert client.get("/jobs/a1b2c3").status_code == 200  # a real prefix still works
        for probe in ("%%%%%%", "______", "a1b2c%", "a1b2c_", "%only-job", "%25%25%25%25%25%25"):
            for path in (f"/jobs/{probe}", f"/jobs/{probe}/cancel"):
                method = client.post if path.endswith("cancel") else client.get
                answer = method(path)
                assert answer.status_code == 404, (path, answer.text)
                assert "a1b2c3d4-only-job" not in answer.text
        shown = client.get("/jobs/a1b2c3d4-only-job").json()
        assert shown["cancel_requested"] is False  # no wildcard cancelled it


def test_secrets_with_slashes_and_spaces_are_masked_when_shown(
    api: str, settings: Settings
) -> None:
    from loopml.queue import make_app
    from loopml.queue.submit import submit_training

    document = {
        "pipeline": [
            {
                "MLSteps": [
                    {
                        "load_data_from_sql": {
                            "url": "postgresql+psycopg://bob:s3/cr:et@db.example/x",
                            "query": "facts",
                        }
                    },
                    {"train_model": {}},
                ]
            }
        ],
        "experiment_config": {
            "experiment_name": "m",
            "model_name": "m",
            "problem_type": "classification",
            "main_metric": "F1",
            "target": "label",
        },
    }
    job = submit_training(make_app(settings), settings, parse_spec(json.dumps(document)))
    with api_client(api) as client:
        shown = client.get(f"/jobs/{job.id}")
        client.post(f"/jobs/{job.id}/cancel")
    assert shown.status_code == 200
    assert "s3/cr:et" not in shown.text and "cr:et" not in shown.text
    assert "bob:***@db.example" in shown.json()["spec"]


def _loader_spec(path: str) -> str:
    return json.dumps(
        {
            "pipeline": [
                {"MLSteps": [{"load_data_from_file": {"path": path}}, {"train_model": {}}]}
            ],
            "experiment_config": {
                "experiment_name": "e",
                "model_name": "m",
                "problem_type": "classification",
                "main_metric": "F1",
                "target": "y",
            },
        }
    )


def test_nul_characters_are_refused_with_a_422(api: str, settings: Settings) -> None:
    # before: a NUL in a data path was a 500 (os.path.realpath raised ValueError), and
    # one in `source` was queued (202) for the worker to trip over, and one anywhere
    # cannot be stored in PostgreSQL's text columns
    root = settings.data_roots[0]
    with api_client(api) as client:
        before = client.get("/jobs").json()["jobs"]
        for body in (
            {"spec": _loader_spec(f"{root}/t\x00.csv")},
            {"spec": _loader_spec("t.csv"), "source": f"{root}/\x00spec.json"},
            {"spec": _loader_spec(f"{root}/t.csv") + "\x00"},
        ):
            answer = client.post("/jobs", json=body)
            assert answer.status_code == 422, answer.text
            assert "NUL" in answer.text
        assert client.get("/jobs").json()["jobs"] == before  # nothing was queued


def test_a_lone_surrogate_is_a_422_not_a_500(api: str) -> None:
    # before: valid JSON holding "\ud800" failed validation, and FastAPI's 422, which
    # repeats the rejected value, could not be encoded as UTF-8: the answer was a 500
    with api_client(api) as client:
        answer = client.post(
            "/jobs", content=b'{"spec": "\\ud800"}', headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 422, answer.status_code
        assert answer.json()["detail"] == [
            {
                "loc": ["body", "spec"],
                "msg": "Input should be a valid string, unable to parse raw data as a "
                "unicode string",
                "type": "string_unicode",
            }
        ]
        big = client.post("/jobs", json={"spec": "x", "source": 7 * ["y" * 100_000]})
        assert big.status_code == 422 and len(big.content) < 1_000  # no value repeated back


@pytest.fixture(scope="module")
def pg_api(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The API on PostgreSQL, which enforces what SQLite lets pass (column widths, NULs)."""
    folder = tmp_path_factory.mktemp("hostile-pg")
    configured = Settings(
        home=folder / "home", api_keys=[KEY], data_roots=[folder], database_url=postgres_url
    )
    with running_api(configured) as url:
        yield url, folder


def test_a_model_name_too_long_for_the_store_is_a_spec_issue(pg_api: tuple[str, Path]) -> None:
    # before: a 300-character model name passed the spec check and PostgreSQL refused the
    # job row (jobs.model_name is 255 characters): a 500
    url, folder = pg_api
    spec = json.loads(_loader_spec(str(folder / "t.csv")))
    spec["experiment_config"]["model_name"] = "m" * 300
    with api_client(url) as client:
        answer = client.post("/jobs", json={"spec": json.dumps(spec)})
        assert answer.status_code == 422, answer.text[:300]
        issues = {issue["path"]: issue["message"] for issue in answer.json()["detail"]["issues"]}
        assert "300 characters long; at most 255" in issues["experiment_config.model_name"]


def test_a_nul_in_a_job_id_is_a_404(pg_api: tuple[str, Path]) -> None:
    # before: PostgreSQL refused the query ("cannot contain NUL characters"): a 500
    with api_client(pg_api[0]) as client:
        for method, path in (
            ("GET", "/jobs/%00abcdef"),
            ("POST", "/jobs/abc%00def/cancel"),
            ("GET", "/batches/abcdef%00"),
        ):
            answer = client.request(method, path)
            assert answer.status_code == 404, (path, answer.status_code)
            assert "no job with id" in answer.json()["detail"]


def test_a_metadata_store_that_is_down_is_a_503_not_a_500(tmp_path: Path) -> None:
    # before: a database outage during POST /jobs or any jobs route was a bare 500
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: connecting is refused
    example = Path(__file__).parents[2] / "examples" / "credit_fraud.json"
    down = Settings(
        home=tmp_path / "home",
        api_keys=[KEY],
        data_roots=[example.parents[1]],
        database_url=f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{port}/loopml",
    )
    with running_api(down) as url, api_client(url) as client:
        answers = [
            client.post("/jobs", json={"spec": example.read_text(), "source": str(example)}),
            client.get("/jobs"),
            client.get("/jobs/0123456789abcdef"),
            client.post("/jobs/0123456789abcdef/cancel"),
            client.get("/batches/0123456789abcdef"),
        ]
    for answer in answers:
        assert answer.status_code == 503, (answer.request.url, answer.text)
        assert "cannot be reached" in answer.json()["detail"]
        assert "s3cret" not in answer.text
