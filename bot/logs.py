"""Logging set-up: one format, and a filter that keeps message bodies and secrets out of logs.

Slack's libraries log request bodies (on a bad signature, an unhandled request, or at debug
level) and the SQLite driver logs statement parameters; both carry what people typed and
sometimes tokens, so those records are redacted. SQLAlchemy is told to hide parameters.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "configure_logging"]

_SECRET = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|ya29\.[\w.-]+)")
_BODY_HINTS = ("body", "Unhandled request", "payload", "Sending a request", "Received the")


class RedactingFilter(logging.Filter):
    """Rewrites records that would print a body or a token; never drops a record's level."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        # aiosqlite logs every statement with its parameters at DEBUG: what people typed.
        if record.name.startswith("aiosqlite") or (
            record.name.startswith(("slack_bolt", "slack_sdk"))
            and any(hint in message for hint in _BODY_HINTS)
        ):
            record.msg = f"[{record.name}: message withheld, it may contain a request body]"
            record.args = ()
        elif _SECRET.search(message):
            record.msg = _SECRET.sub("[redacted]", message)
            record.args = ()
        return True


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level``, with bodies and tokens redacted everywhere."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redact = RedactingFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
