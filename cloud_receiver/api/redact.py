"""Keep API keys sent in URLs (``?key=``, for still-image clients) out of every log line.

uvicorn's access log (on at DEBUG) writes each request's path with its query string; this
filter rewrites the key's value before any handler formats the record.
"""

from __future__ import annotations

import logging
import re

_KEY = re.compile(r"([?&]key=)[^&#\s\"]*")
ACCESS_LOGGER = "uvicorn.access"


def redact(text: str) -> str:
    return _KEY.sub(r"\1[redacted]", text)


class RedactKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Once per process: filters stay on the logger whatever app instance installed them."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactKeys) for f in logger.filters):
        logger.addFilter(RedactKeys())
