"""kombu's AMQP transport, with messages that are never decompressed before they are checked.

kombu decompresses a message carrying a ``compression`` header while it
builds the message object, before any consumer code sees it: a small gzip or
bzip2 bomb becomes gigabytes in the worker's main process. loopml never
compresses its messages, so this transport's message keeps the body as it
came, moves the header aside (``loopml_compression``) and lets the admission
check (:mod:`loopml.queue.admission`) dead-letter it with a reason. A message
whose headers are not a table is recorded the same way instead of raising
inside kombu.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import pyamqp

_Message: Any = pyamqp.Message
_Channel: Any = pyamqp.Channel
_Connection: Any = pyamqp.Connection
_Transport: Any = pyamqp.Transport
_SSLTransport: Any = pyamqp.SSLTransport


def set_aside_compression(headers: Any) -> tuple[dict[str, Any], Any]:
    """``headers`` without ``compression`` (and that header's value), as a dict."""
    if not isinstance(headers, dict):
        return {}, None
    if "compression" not in headers:
        return headers, None
    rest = {key: value for key, value in headers.items() if key != "compression"}
    return rest, headers["compression"]


class Message(_Message):  # type: ignore[misc]
    """An AMQP message whose body is left compressed, and whose odd headers do not raise."""

    def __init__(self, msg: Any, channel: Any = None, **kwargs: Any) -> None:
        self.loopml_compression = None
        self.loopml_problem: str | None = None
        properties = msg.properties
        headers = properties.get("application_headers")
        if headers is not None and not isinstance(headers, dict):
            self.loopml_problem = f"headers are {type(headers).__name__}, not a table"
            properties["application_headers"] = {}
        else:
            properties["application_headers"], self.loopml_compression = set_aside_compression(
                headers or {}
            )
        super().__init__(msg, channel=channel, **kwargs)


class Channel(_Channel):  # type: ignore[misc]
    Message = Message


class Connection(_Connection):  # type: ignore[misc]
    Channel = Channel


class Transport(_Transport):  # type: ignore[misc]
    """``amqp://``: py-amqp, with :class:`Message`."""

    Connection = Connection


class SSLTransport(_SSLTransport):  # type: ignore[misc]
    """``amqps://``: the same over TLS."""

    Connection = Connection
