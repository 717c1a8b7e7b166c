"""Alerts: every one goes to the log, and to a webhook (JSON over HTTP POST) when configured.

A webhook that cannot be reached does not stop the monitor (the checks are
stored either way), but the failure is logged as an error and reported back
so the CLI shows it.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("loopml.monitoring.alerts")


@dataclass(frozen=True)
class Alert:
    """What a person (or a chat bot) receives about one window of one model."""

    model_name: str
    model_version: str | None
    window_index: int
    window_start: str
    window_end: str
    kinds: list[str]
    messages: list[str]
    action: str
    sent_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def summary(self) -> str:
        return f"loopml monitor: {self.model_name} window {self.window_index}: " + "; ".join(
            self.messages
        )

    def payload(self) -> dict[str, Any]:
        body = asdict(self)
        body["text"] = f"{self.summary} -> {self.action}"
        return body


class Alerter:
    """Sends alerts to the log and to ``webhook_url``."""

    def __init__(self, webhook_url: str | None = None, *, timeout: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self.timeout = timeout

    def send(self, alert: Alert) -> bool:
        """Log ``alert`` and POST it; True when the webhook (if any) accepted it."""
        log.warning("%s -> %s", alert.summary, alert.action)
        if not self.webhook_url:
            return True
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps(alert.payload()).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "loopml-monitor"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = int(response.status)
        except (urllib.error.URLError, OSError) as exc:
            log.error("alert webhook %s failed: %s", self.webhook_url, exc)
            return False
        if status >= 300:
            log.error("alert webhook %s answered HTTP %s", self.webhook_url, status)
            return False
        return True
