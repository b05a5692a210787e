"""console/urls.py: URLs as they may be shown, credentials cut out."""

from __future__ import annotations

import pytest

from console.urls import MASK, redact_url, redact_urls_in


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:8080/p?a=1", "http://***@host:8080/p?a=1"),
        ("https://token@host/", "https://***@host/"),
        ("http://u:p@ss@host/", "http://***@host/"),  # an @ inside the password
        ("http://127.0.0.1@10.0.0.1:80/", "http://***@10.0.0.1:80/"),  # the real host stays
    ],
)
def test_userinfo_is_cut_out_of_http_urls(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("rediss://default:hunter2@cache.internal:6380/1", "rediss://***@cache.internal:6380/1"),
        ("redis://127.0.0.1:6379/0?password=hunter2", "redis://127.0.0.1:6379/0?password=***"),
        # A password pasted with a raw / ? or # ends the parser's netloc early.
        ("redis://:hun/ter2@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("redis://:hun#ter2@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("redis://:hun?ter2@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        (
            "unix:///run/redis.sock?db=0&password=hunter2",
            "unix:///run/redis.sock?db=0&password=***",
        ),
    ],
)
def test_redis_urls_lose_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "hun" not in shown


@pytest.mark.parametrize("key", ["token", "Token", "api_key", "access_token", "sig", "password"])
def test_secret_query_values_are_masked_and_the_rest_kept(key: str) -> None:
    shown = redact_url(f"https://h.example/x?{key}=s3cret&q=1")
    assert shown == f"https://h.example/x?{key}={MASK}&q=1"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:15000",
        "http://host:8080/a@b",  # an @ in the path is not userinfo
        "https://h.example/x?q=1&page=2",
        "redis://127.0.0.1:6379/0",
    ],
)
def test_urls_without_secrets_are_returned_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_text_with_several_urls_redacts_each_and_keeps_the_rest() -> None:
    text = (
        "cannot reach redis://:pw1@r.internal:6379/0, nor (http://alice:pw2@m.internal:5000/x). "
        "Tried 'https://h/x?token=pw3' and http://plain:9090 too"
    )
    shown = redact_urls_in(text)
    assert not any(secret in shown for secret in ("pw1", "pw2", "pw3"))
    assert shown == (
        "cannot reach redis://***@r.internal:6379/0, nor (http://***@m.internal:5000/x). "
        "Tried 'https://h/x?token=***' and http://plain:9090 too"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("notaurl", "notaurl"),
        ("", ""),
        ("http://[::1", "http://[::1"),  # unparseable, nothing secret: unchanged
        ("http://u:p@[::1/x", "http://***@[::1/x"),  # unparseable, but userinfo still cut
        ("user:pw", "user:pw"),  # no scheme: not a URL, nothing cut
    ],
)
def test_malformed_input_never_raises_and_still_loses_userinfo(text: str, shown: str) -> None:
    assert redact_url(text) == shown
    assert redact_urls_in(f"x {text} y") == f"x {shown} y"
