"""A logging filter that masks secrets in records of third-party loggers.

httpx logs every request URL at INFO, and a Slack incoming-webhook URL *is*
a secret; apiwatch's own log lines never hold secrets in the first place.

>>> import logging
>>> f = RedactingFilter(["s3cret"])
>>> rec = logging.LogRecord("httpx", logging.INFO, __file__, 1, "POST %s", ("https://x/s3cret",), None)
>>> f.filter(rec), rec.getMessage()
(True, 'POST https://x/***')
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from apiwatch.models.delivery.redact import redact

#: Loggers of the HTTP stack that may print URLs or headers.
HTTP_LOGGERS = ("httpx", "httpcore.http11", "httpcore.connection")


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


@contextmanager
def redacting(secrets: Iterable[str], loggers: Iterable[str] = HTTP_LOGGERS) -> Iterator[None]:
    """Install a :class:`RedactingFilter` on ``loggers`` for the duration of the block."""
    flt = RedactingFilter(secrets)
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addFilter(flt)
    try:
        yield
    finally:
        for logger in targets:
            logger.removeFilter(flt)
