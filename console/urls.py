"""URLs as they may be shown: credentials cut out.

Backend URLs carry credentials (``redis://:pw@host``, ``http://user:token@host``, a
``?token=...`` query). Anything a person or a log sees (errors, plans, ``lab status``, the
screen) goes through ``redact_url`` or, for free text that may embed URLs (an exception's
message), ``redact_urls_in``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_QUERY_KEYS = frozenset(
    {"password", "passwd", "pwd", "token", "access_token", "api_key", "apikey", "key",
     "secret", "client_secret", "auth", "signature", "sig", "x-amz-signature"}  # fmt: skip
)
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` with its userinfo and secret-looking query values replaced by ``***``. Text that
    does not parse as a URL is returned unchanged only if it holds no ``@`` before a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _crude(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls_in(text: str) -> str:
    """Every URL inside ``text`` redacted (for messages that quote a URL)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _crude(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://{MASK}@{rest.split('@', 1)[1]}"
    return url
