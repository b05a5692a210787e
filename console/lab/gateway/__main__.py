"""``python -m console.lab.gateway --settings-json FILE`` (what the launcher runs) or
``--config lab.toml``: serve the gateway on the port of ``gateway.url``, loopback only."""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit

from console.errors import ConsoleError
from console.lab import resolved

log = logging.getLogger("console.lab.gateway")


def main(argv: list[str] | None = None) -> int:
    try:
        settings = resolved.service_settings("python -m console.lab.gateway", __doc__, argv)
        from console.lab.specs import require_loopback, service_port

        url = settings.gateway.url
        require_loopback("gateway", url)
        port = service_port("gateway", url)
    except ConsoleError as exc:
        log.error("%s", exc)
        return 2
    import uvicorn

    from console.lab.gateway.app import create_app

    host = urlsplit(url).hostname or "127.0.0.1"
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1" if host == "localhost" else host,
        port=port,
        log_level="info",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
