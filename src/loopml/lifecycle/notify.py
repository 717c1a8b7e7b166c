"""Approval notices: a challenger waits for a person, so the alerts channel says where to look.

The gate calls :func:`notify_awaiting_approval` when it leaves a version
``pending``. The notice goes to the log always, to the alerts webhook
(``LOOPML_ALERT_WEBHOOK_URL``, the one monitoring alerts use) as JSON, and by
email when ``LOOPML_SMTP_HOST`` and ``LOOPML_SMTP_TO`` are set. Each carries
the link to the version's page in the review console. A channel that fails
is logged as an error and reported back; it never fails the run that trained
the model (the version waits either way, and ``loopml models list`` shows it).
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from loopml.core.settings import Settings

log = logging.getLogger("loopml.lifecycle.notify")

DEFAULT_CONSOLE_URL = "http://127.0.0.1:8100/ui"


def console_link(settings: Settings, name: str, version: str) -> str:
    """The console page of version ``version`` of ``name``."""
    base = (settings.console_url or DEFAULT_CONSOLE_URL).rstrip("/")
    return f"{base}/models/{urllib.parse.quote(name, safe='')}/versions/{version}"


@dataclass(frozen=True)
class ApprovalNotice:
    """What a person receives when a challenger waits for approval."""

    model_name: str
    model_version: str
    reason: str
    link: str
    run_id: str | None = None
    kind: str = "awaiting_approval"
    sent_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def subject(self) -> str:
        return f"loopml: {self.model_name} version {self.model_version} waits for approval"

    @property
    def text(self) -> str:
        return (
            f"{self.subject}.\nGate: {self.reason}\nReview, approve or reject it: {self.link}\n"
            + (f"Training run: {self.run_id}\n" if self.run_id else "")
        )

    def payload(self) -> dict[str, Any]:
        return {**asdict(self), "text": f"{self.subject}: {self.link}"}


@dataclass(frozen=True)
class Delivery:
    """Which channels took the notice (``None``: not configured)."""

    webhook: bool | None
    email: bool | None


def notify_awaiting_approval(
    settings: Settings, name: str, version: str, *, reason: str, run_id: str | None = None
) -> Delivery:
    """Tell the alerts channel that version ``version`` of ``name`` waits; never raises."""
    notice = ApprovalNotice(name, version, reason, console_link(settings, name, version), run_id)
    log.warning("%s: %s", notice.subject, notice.link)
    webhook = post_webhook(settings, notice) if settings.alert_webhook_url else None
    email = send_email(settings, notice) if settings.smtp_host and settings.smtp_to else None
    return Delivery(webhook, email)


def post_webhook(settings: Settings, notice: ApprovalNotice, timeout: float = 5.0) -> bool:
    """POST the notice as JSON to ``LOOPML_ALERT_WEBHOOK_URL``; True when it answered 2xx."""
    url = str(settings.alert_webhook_url)
    try:
        request = urllib.request.Request(
            url,
            data=json.dumps(notice.payload()).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "loopml-approvals"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: not a URL
        log.error("approval webhook %s failed: %s", url, exc)
        return False
    if status >= 300:
        log.error("approval webhook %s answered HTTP %s", url, status)
        return False
    return True


def send_email(settings: Settings, notice: ApprovalNotice) -> bool:
    """Mail the notice through ``LOOPML_SMTP_HOST``; True when the server accepted it."""
    host = str(settings.smtp_host)
    try:
        message = EmailMessage()
        message["Subject"] = notice.subject
        message["From"] = settings.smtp_from
        message["To"] = ", ".join(settings.smtp_to)
        message.set_content(notice.text)
        with smtplib.SMTP(host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError, ValueError) as exc:  # ValueError: a bad header
        log.error("approval email through %s:%s failed: %s", host, settings.smtp_port, exc)
        return False
    if refused:
        log.error("approval email: the server refused %s", sorted(refused))
        return False
    return True
