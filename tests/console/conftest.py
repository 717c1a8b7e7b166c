"""One real world for the console tests: trained versions, a waiting challenger, receivers.

Trained once per session (engine, real MLflow store, SQLite metadata store):
version 1 becomes champion through the gate; versions 2, 3 and 4 pass a gate
with ``require_approval`` and wait. While they train, the approval notices go
to a real HTTP webhook receiver and an in-process SMTP server (aiosmtpd),
both on free loopback ports, which keep what they received.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopml.core.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
from make_creditcard import make_creditcard, write_zip

MODEL = "console_fraud"
KEY = "console-key-0123456789abcdef"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebhookReceiver:
    """A real HTTP server that keeps every JSON body POSTed to it; answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailBox:
    """An aiosmtpd server on a free loopback port; ``messages`` holds what it accepted."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.port = free_port()
        box = self

        class Handler:
            async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
                self, server: Any, session: Any, envelope: Any
            ) -> str:
                box.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailBox:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass
class World:
    settings: Settings
    webhook: WebhookReceiver
    mailbox: MailBox
    versions: dict[str, str] = field(default_factory=dict)  # role -> version
    run_ids: dict[str, str] = field(default_factory=dict)
    data: Path | None = None


def _spec(data: Path, estimator: str, *, approval: bool, evaluate: bool) -> str:
    train = {
        "estimator_list": [estimator],
        "fold": 2,
        "n_select": 1,
        "tune": False,
        "session_id": 3,
    }
    return json.dumps(
        {
            "pipeline": [
                {
                    "MLSteps": [
                        {"load_data_from_file": {"path": str(data)}},
                        {"validate_data": {}},
                        {"train_model": {"modeling_params": train}},
                        *([{"evaluate_model": {}}] if evaluate else []),
                        {"validate_model": {"require_approval": approval}},
                    ]
                }
            ],
            "experiment_config": {
                "experiment_name": f"exp-{MODEL}",
                "model_name": MODEL,
                "main_metric": "F1",
                "problem_type": "classification",
                "target": "Class",
            },
        }
    )


@pytest.fixture(scope="session")
def world(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from loopml.core.spec import parse_spec
    from loopml.engine import run_pipeline

    folder = tmp_path_factory.mktemp("console")
    data = write_zip(make_creditcard(600, positive_rate=0.1, seed=11), folder / "cc.zip")
    with WebhookReceiver() as webhook, MailBox() as mailbox:
        settings = Settings(
            home=folder / "home",
            tracking_uri=tracking_uri,
            database_url=f"sqlite:///{folder / 'meta' / 'loopml.db'}",
            artifact_root=(folder / "artifacts").as_uri(),
            api_keys=[KEY],
            alert_webhook_url=webhook.url,
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
            smtp_to=["reviewers@example.com"],
            console_url="https://console.example.com/ui",
        )
        found = World(settings, webhook, mailbox, data=data)
        for role, estimator, approval in (
            ("champion", "dummy", False),
            ("approve", "lr", True),  # the one with the full report (evaluation plots too)
            ("reject", "nb", True),
            ("http", "nb", True),
        ):
            spec = _spec(data, estimator, approval=approval, evaluate=role == "approve")
            result = run_pipeline(parse_spec(spec), settings)
            gate = result.context.gate
            assert gate is not None
            assert gate.decision == ("awaiting_approval" if approval else "promoted"), gate.reason
            found.versions[role] = gate.challenger_version
            found.run_ids[role] = result.run.id
        yield found


def login(client: httpx.Client, key: str = KEY, who: str = "Ann Reviewer") -> httpx.Response:
    """Log ``client`` in through the form, as a browser does; the final response."""
    form = client.get("/ui/login")
    token = CSRF_FIELD.search(form.text)
    assert token is not None, form.text
    return client.post(
        "/ui/login",
        data={"csrf": token.group(1), "key": key, "who": who, "next": "/ui/models"},
    )


def csrf_of(page: str) -> str:
    found = CSRF_FIELD.search(page)
    assert found is not None, page[:500]
    return found.group(1)
