"""Approval notices: the gate's waiting challengers reach a real webhook and a real SMTP server.

The session's world trained three challengers that wait for approval; each
gate sent its notice to the HTTP receiver and to the aiosmtpd server while
the pipeline ran. A channel that fails (refused connection, HTTP 500) is
logged and reported, never raised.
"""

from __future__ import annotations

import logging

import pytest

from loopml.lifecycle.notify import console_link, notify_awaiting_approval
from tests.console.conftest import MODEL, WebhookReceiver, World, free_port

WAITING = ("approve", "reject", "http")


def test_each_waiting_challenger_was_announced_on_the_webhook_with_its_link(world: World) -> None:
    notices = [body for body in world.webhook.bodies if body["model_name"] == MODEL]
    versions = sorted(body["model_version"] for body in notices)
    assert versions == sorted(world.versions[role] for role in WAITING)
    for body in notices:
        assert body["kind"] == "awaiting_approval"
        expected = f"https://console.example.com/ui/models/{MODEL}/versions/{body['model_version']}"
        assert body["link"] == expected
        assert expected in body["text"]
        assert "waiting for approval" in body["reason"]
        assert body["run_id"] in world.run_ids.values()


def test_each_waiting_challenger_was_mailed_through_smtp(world: World) -> None:
    mails = [m for m in world.mailbox.messages if MODEL in str(m["Subject"])]
    assert len(mails) == len(WAITING)
    for role, mail in zip(WAITING, mails, strict=True):
        version = world.versions[role]
        assert mail["Subject"] == f"loopml: {MODEL} version {version} waits for approval"
        assert mail["To"] == "reviewers@example.com"
        assert mail["From"] == "loopml@localhost"
        body = mail.get_payload(decode=True).decode()
        assert f"https://console.example.com/ui/models/{MODEL}/versions/{version}" in body
        assert world.run_ids[role] in body


def test_failing_channels_are_logged_and_never_raise(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with WebhookReceiver(status=500) as broken:
        settings = world.settings.model_copy(
            update={"alert_webhook_url": broken.url, "smtp_port": free_port()}
        )
        with caplog.at_level(logging.ERROR, logger="loopml.lifecycle.notify"):
            delivery = notify_awaiting_approval(settings, MODEL, "9", reason="r", run_id=None)
        assert len(broken.bodies) == 1  # it was reached, and said no
    assert (delivery.webhook, delivery.email) == (False, False)
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "HTTP Error 500" in messages and "approval email through 127.0.0.1" in messages

    bad_header = world.settings.model_copy(
        update={"alert_webhook_url": "not a url", "smtp_to": ["a@example.com\nBcc: x@evil"]}
    )
    delivery = notify_awaiting_approval(bad_header, MODEL, "9", reason="r")
    assert (delivery.webhook, delivery.email) == (False, False)
    assert world.mailbox.messages[-1]["To"] != "a@example.com\nBcc: x@evil"

    unconfigured = world.settings.model_copy(update={"alert_webhook_url": None, "smtp_host": None})
    delivery = notify_awaiting_approval(unconfigured, MODEL, "9", reason="r")
    assert (delivery.webhook, delivery.email) == (None, None)


def test_the_link_quotes_the_model_name(world: World) -> None:
    odd = world.settings.model_copy(update={"console_url": "https://c.example/ui/"})
    assert console_link(odd, "a b&c", "3") == "https://c.example/ui/models/a%20b%26c/versions/3"
