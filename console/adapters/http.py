"""Shared HTTP plumbing: the one place clients are made from an endpoint's config
(``console.endpoints``: credentials, TLS, proxy) and httpx failures become ``AdapterError``s.

Their messages quote the request's URL without its credentials (``http://user:token@host``
is shown as ``http://***@host``), and so is any URL inside a backend's or httpx's own text.
A 401 or 403 is a ``BackendAuthError`` ("prometheus at URL refused the credentials (401)"); a
TLS failure a ``BackendUnavailable`` naming the certificate problem.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Generator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from console.endpoints import HttpClientOptions, HttpCredentials, TlsConfig
from console.errors import BackendAuthError, BackendResponseError, BackendUnavailable, ConfigError
from console.urls import redact_url, redact_urls_in

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
log = logging.getLogger(__name__)
_warned_insecure: set[str] = set()


class EndpointClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that knows whether its requests carry credentials, so a 401
    can say "no credentials configured"."""

    sends_credentials: bool = False


def ssl_context(tls: TlsConfig | None, *, where: str = "") -> ssl.SSLContext:
    """The context that checks a server's certificate: against ``tls.ca_file`` or the system's
    CAs (never ``SSL_CERT_FILE``), with the client certificate for mutual TLS."""
    try:
        if tls is not None and tls.ca_file is not None:
            context = ssl.create_default_context(cafile=str(tls.ca_file))
        else:
            context = httpx.create_ssl_context(trust_env=False)
    except (OSError, ssl.SSLError) as exc:
        raise _tls_file_error(tls.ca_file if tls else None, "ca_file", exc) from None
    if tls is None:
        return context
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise _tls_file_error(tls.cert_file, "cert_file/key_file", exc) from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if where not in _warned_insecure:
            _warned_insecure.add(where)
            log.warning(
                "WARNING: TLS certificate checks are OFF for %s (tls_config.insecure_skip_verify):"
                " anyone on the path can read and change its traffic and credentials",
                where or "an endpoint",
            )
    return context


def _tls_file_error(path: Path | None, option: str, exc: Exception) -> ConfigError:
    reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
    return ConfigError(f"tls_config.{option} {path}: cannot be loaded ({reason})")


def endpoint_transport(
    tls: TlsConfig | None, proxy_url: str | None = None, *, where: str = ""
) -> httpx.AsyncBaseTransport:
    """The network side of a client: TLS as ``tls`` says, through ``proxy_url`` or no proxy
    at all. Without ``tls`` (the system's CAs, nothing to load that could be wrong) the
    certificate-checking context is made at the first request that may need it: loading the
    CAs costs tens of milliseconds, and a plain ``http://`` endpoint never needs them."""
    if tls is None:
        return _DeferredTlsTransport(proxy_url, where)
    return _transport(ssl_context(tls, where=where), proxy_url)


def _transport(verify: ssl.SSLContext | bool, proxy_url: str | None) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(
        verify=verify,
        trust_env=False,
        proxy=httpx.Proxy(proxy_url) if proxy_url else None,
    )


class _DeferredTlsTransport(httpx.AsyncBaseTransport):
    """``endpoint_transport`` without a ``tls_config``: requests that may use TLS (an
    ``https://`` URL, or any request through a proxy) go through a transport checking
    certificates against the system's CAs, made at the first such request; plain ``http://``
    requests without a proxy, which never negotiate TLS, through one that has no CAs."""

    def __init__(self, proxy_url: str | None, where: str) -> None:
        self._proxy_url = proxy_url
        self._where = where
        self._checked: httpx.AsyncHTTPTransport | None = None
        self._plain: httpx.AsyncHTTPTransport | None = None

    def _for(self, request: httpx.Request) -> httpx.AsyncHTTPTransport:
        if request.url.scheme == "http" and not self._proxy_url:
            if self._plain is None:
                self._plain = _transport(False, None)  # never used for TLS: http, no proxy
            return self._plain
        if self._checked is None:
            self._checked = _transport(ssl_context(None, where=self._where), self._proxy_url)
        return self._checked

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._for(request).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in (self._plain, self._checked):
            if transport is not None:
                await transport.aclose()


def credential_headers(options: HttpCredentials) -> dict[str, str]:
    """The headers that carry ``options``' credentials (secret files are read now)."""
    headers = {name: value.get_secret_value() for name, value in options.headers.items()}
    if options.authorization is not None:
        headers["Authorization"] = options.authorization.header_value()
    elif options.basic_auth is not None:
        pair = f"{options.basic_auth.username}:{options.basic_auth.secret()}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def sni_hook(server_name: str) -> Callable[[httpx.Request], Awaitable[None]]:
    """Sends ``server_name`` as SNI and checks the certificate against it, whatever the URL's
    host (httpcore's ``sni_hostname`` request extension)."""

    async def hook(request: httpx.Request) -> None:
        if request.url.scheme == "https":
            request.extensions["sni_hostname"] = server_name

    return hook


def make_client(
    base_url: str,
    timeout_s: float,
    *,
    options: HttpClientOptions | None = None,
    backend: str = "",
    trust_env: Literal[False] = False,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """A client for ``base_url``: no redirects followed, nothing taken from the environment
    (proxies, ``.netrc``, ``SSL_CERT_FILE``), credentials and TLS from ``options``. A given
    ``transport`` (a test's, or one wrapping ``endpoint_transport``) replaces the network."""
    where = f"{backend} at {redact_url(base_url)}".strip()
    headers = dict(kwargs.pop("headers", None) or {})
    hooks: dict[str, list[Any]] = {
        k: list(v) for k, v in (kwargs.pop("event_hooks", None) or {}).items()
    }
    transport = kwargs.pop("transport", None) or endpoint_transport(
        options.tls_config if options else None, options.proxy_url if options else None, where=where
    )
    if options is not None:
        headers.update(credential_headers(options))
        tls = options.tls_config
        if tls is not None and tls.server_name:
            hooks.setdefault("request", []).insert(0, sni_hook(tls.server_name))
    client = EndpointClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=trust_env,
        headers=headers,
        transport=transport,
        event_hooks=hooks,
        **kwargs,
    )
    client.sends_credentials = bool(
        (options is not None and options.sends_credentials) or urlsplit(base_url).username
    )
    return client


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _PerHostCredentials(httpx.Auth):
    """Adds each host's credential headers (``http_action.auth``) to a request for it; they
    win over the request's own. Secret files are read once, at the first request."""

    def __init__(self, per_host: Mapping[str, HttpCredentials]) -> None:
        self._per_host = per_host
        self._headers: dict[str, dict[str, str]] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        host = request.url.host
        credentials = self._per_host.get(host)
        # Never in clear over the network: credentials for a host go over https, or to the
        # loopback (a sidecar, the lab), not to http://host:other-port.
        in_clear = request.url.scheme != "https" and host not in LOOPBACK_HOSTS
        if credentials is not None and not in_clear:
            if host not in self._headers:
                self._headers[host] = credential_headers(credentials)
            request.headers.update(self._headers[host])
        yield request


def per_host_client(
    timeout_s: float, proxy: str | None, per_host: Mapping[str, HttpCredentials]
) -> httpx.AsyncClient:
    """The templated HTTP action's client: one for any allowed host, each host of
    ``per_host`` with its credentials and its TLS (own CA, client certificate, server name),
    no redirects followed, no proxy but ``proxy``, nothing from the environment."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    server_names: dict[str, str] = {}
    for host, credentials in per_host.items():
        tls = credentials.tls_config
        if tls is not None:
            mounts[f"all://{host}"] = endpoint_transport(tls, proxy, where=f"http.request {host}")
            if tls.server_name:
                server_names[host] = tls.server_name

    async def sni(request: httpx.Request) -> None:
        name = server_names.get(request.url.host)
        if name and request.url.scheme == "https":
            request.extensions["sni_hostname"] = name

    return httpx.AsyncClient(
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
        auth=_PerHostCredentials(per_host),
        proxy=proxy,
        mounts=mounts,
        event_hooks={"request": [sni]},
    )


def refused(backend: str, url: str, status: int, sent_credentials: bool) -> BackendAuthError:
    """ "prometheus at https://host:9090 refused the credentials (401)"."""
    hint = "" if sent_credentials else ": no credentials configured"
    return BackendAuthError(
        f"{backend} at {_origin(url)} refused the credentials ({status}){hint}", backend, status
    )


def _origin(url: str) -> str:
    parts = urlsplit(redact_url(url))
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


def tls_problem(exc: BaseException) -> str | None:
    """The certificate problem behind a transport error, with what to set; None if the error
    is not a TLS one."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or cause.reason or "failed"
            if "hostname" in str(detail).lower() or "ip address mismatch" in str(detail).lower():
                hint = "check the URL's host, or set tls_config.server_name"
            else:
                hint = "set tls_config.ca_file"
            return f"certificate verify failed: {detail} ({hint})"
        if isinstance(cause, ssl.SSLError):
            reason = str(cause.reason or cause).lower().replace("_", " ")
            # The server's alert after our certificate (or its absence): TLS 1.3 delivers it at
            # the first read, TLS 1.2 in the handshake.
            server_refused = ("certificate required", "handshake failure", "bad certificate")
            if any(words in reason for words in server_refused):
                return f"{reason} (the server wants a client certificate: tls_config.cert_file)"
            if "wrong version number" in reason or "record layer failure" in reason:
                return f"{reason} (is the server speaking plain HTTP? use http://)"
            return reason
        cause = cause.__cause__ or cause.__context__
    return None


def transport_failure(
    exc: httpx.TransportError | ssl.SSLError, backend: str, where: str, base_url: str
) -> BackendUnavailable:
    """A connect error or timeout as a BackendUnavailable: a TLS problem named, not retried."""
    if isinstance(exc, httpx.TimeoutException):
        return BackendUnavailable(f"{where}: timed out", backend)
    tls = tls_problem(exc)
    if tls is not None:
        error = BackendUnavailable(f"{backend} at {_origin(base_url)}: TLS: {tls}", backend)
        error.retryable = False  # the same certificate fails the same way
        return error
    return BackendUnavailable(f"{where}: cannot connect ({_reason(exc)})", backend)


async def request_json(
    client: httpx.AsyncClient,
    backend: str,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
    allow_404: bool = False,
) -> Any:
    """Send a request (a JSON body, or raw ``content``) and return its decoded JSON body (None
    for an empty body).

    Raises BackendUnavailable (retryable) on connect errors and timeouts (not retryable: a
    TLS failure), BackendAuthError on 401 and 403, and BackendResponseError on other error
    statuses or a body that is not JSON.
    """
    where = f"{backend} {method} {redact_url(str(client.base_url.join(url)))}"
    try:
        response = await client.request(method, url, json=json_body, params=params, content=content)
    except (httpx.TransportError, ssl.SSLError) as exc:
        # A TLS 1.3 server that refuses our client certificate says so after the handshake:
        # its alert reaches httpx's read as a bare ssl.SSLError.
        base = str(client.base_url) if str(client.base_url) else url
        raise transport_failure(exc, backend, where, base) from None
    if response.status_code in (401, 403):
        sent = getattr(client, "sends_credentials", False) or "authorization" in {
            k.lower() for k in response.request.headers
        }
        raise refused(backend, str(client.base_url), response.status_code, bool(sent))
    if allow_404 and response.status_code == 404:
        return None
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise BackendResponseError(
            f"{where}: response of {len(response.content)} bytes is over the limit",
            backend,
            response.status_code,
        )
    if response.status_code >= 400:
        raise BackendResponseError(
            f"{where}: HTTP {response.status_code}: {_error_text(response)}",
            backend,
            response.status_code,
        )
    if not response.content.strip():
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        snippet = response.text[:80].replace("\n", " ")
        raise BackendResponseError(
            f"{where}: answered HTTP {response.status_code} with a body that is not JSON: "
            f"{redact_urls_in(snippet)!r}",
            backend,
            response.status_code,
        ) from None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return redact_urls_in(text.splitlines()[0][:200])


def _error_text(response: httpx.Response) -> str:
    """The error a backend answered, cut short, any URL in it redacted."""
    return redact_urls_in(_raw_error_text(response))


def _cut(text: str, limit: int = 320) -> str:
    """``text`` at most ``limit`` characters long, keeping its end: engines put the cause last
    ("error when executing query=... : the number of matching timeseries exceeds 300000")."""
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]} … {text[-(limit - head - 3) :]}"


def _raw_error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200].replace("\n", " ") or response.reason_phrase
    if isinstance(body, dict):
        code = f"{body['error_code']}: " if "error_code" in body else ""
        for key in ("message", "error"):
            if key in body:
                return f"{code}{_cut(str(body[key]))}"
        if code:
            return code.rstrip(": ")
    return str(body)[:200]
