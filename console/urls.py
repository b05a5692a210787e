"""URLs as they may be shown: credentials cut out.

Backend URLs carry credentials (``redis://:pw@host``, ``http://user:token@host``, a
``?token=...`` query). Anything a person or a log sees (errors, plans, ``lab status``, the
screen) goes through ``redact_url`` or, for free text that may embed URLs (an exception's
message), ``redact_urls_in``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit

MASK = "***"
SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "client_secret",
        "auth",
        "signature",
        "sig",
        "x-amz-signature",
    }
)
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` with its userinfo and secret-looking query values replaced by ``***``, the rest
    kept as written. Never raises: text that does not parse as a URL still loses whatever
    comes before an ``@`` that may end a userinfo."""
    scheme, sep, rest = url.partition("://")
    shown = f"{scheme}://{_without_userinfo(scheme, rest)}" if sep and "@" in rest else url
    head, qsep, tail = shown.partition("?")
    if not qsep:
        return shown
    query, hsep, fragment = tail.partition("#")
    return f"{head}?{_mask_query(query)}{hsep}{fragment}"


def _without_userinfo(scheme: str, rest: str) -> str:
    """``rest`` (what follows ``scheme://``) with its userinfo masked."""
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        return f"{MASK}@{rest[netloc.rfind('@') + 1 :]}"
    try:
        parsed = urlsplit(f"{scheme}://{netloc}")
        valid = bool(parsed.hostname) and (parsed.port is None or parsed.port >= 0)
    except ValueError:  # a port that is not a number: ":pw" of a password cut short
        valid = False
    if valid:
        return rest  # an @ in the path or query is not userinfo
    # A password pasted with a raw / ? or # ends the netloc early (":hun/ter2@host"): the
    # userinfo runs to the last @.
    return f"{MASK}@{rest.rsplit('@', 1)[1]}"


def _mask_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        key = pair.partition("=")[0]
        if unquote_plus(key).lower() in SECRET_QUERY_KEYS:
            pair = f"{key}={MASK}"
        pairs.append(pair)
    return "&".join(pairs)


def redact_urls_in(text: str) -> str:
    """Every URL inside ``text`` redacted (for messages that quote a URL)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
