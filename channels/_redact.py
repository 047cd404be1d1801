"""Keep credentials and signatures out of other libraries' debug logs.

At DEBUG, botocore logs each canonical request (with ``x-amz-security-token``)
and each signature, and botocore/aiobotocore log request headers (with
``Authorization: ... Credential=AKIA...``). :func:`install` puts a filter on
those loggers that rewrites such values as ``<redacted>`` before any handler
sees them; messages are otherwise unchanged.
"""

from __future__ import annotations

import logging
import re

LOGGERS = ("botocore.auth", "botocore.endpoint", "botocore.httpsession", "botocore.hooks", "botocore.parsers",
           "botocore.utils", "botocore.credentials", "botocore.awsrequest", "botocore.retryhandler",
           "aiobotocore.endpoint", "aiobotocore.httpsession", "aiobotocore.hooks", "s3fs", "urllib3.connectionpool",
           "channels.http")

_PATTERNS = [
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*b?['\"]?)[^'\"\n,}]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,}&]+"), r"\1<redacted>"),
    (re.compile(r"(?i)((?:x-amz-)?signature[=:]\s*)[0-9a-f]{16,}"), r"\1<redacted>"),
    (re.compile(r"(?i)((?:x-amz-)?credential=)[^,\s&'\"]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(aws_(?:access_key_id|secret_access_key|session_token)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"),
     r"\1<redacted>"),
]


def redact(text: str) -> str:
    """``text`` with header values, tokens and signatures replaced."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through :func:`redact`; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logger's business, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def install() -> None:
    """Attach the filter to every logger that can print credentials (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
