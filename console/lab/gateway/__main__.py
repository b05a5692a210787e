"""``python -m console.lab.gateway --settings-json FILE`` (what the launcher runs) or
``--config lab.toml``: serve the gateway on the port of ``gateway.url``, loopback only."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from console.config import Settings, load_settings
from console.errors import ConsoleError

log = logging.getLogger("console.lab.gateway")


def _settings(args: argparse.Namespace) -> Settings:
    if args.settings_json is None:
        return load_settings(args.config)
    # The launcher wrote fully resolved settings (env already applied, paths absolute): the
    # environment must not override them again from this process' working directory.
    for key in [k for k in os.environ if k.startswith("CONSOLE_")]:
        del os.environ[key]
    try:
        data = json.loads(Path(args.settings_json).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConsoleError(f"cannot read {args.settings_json}: {exc}") from None
    return Settings(**data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.lab.gateway", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="TOML config (default: as the console)")
    source.add_argument("--settings-json", type=Path, help="resolved settings from the launcher")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per alias poll otherwise
    try:
        settings = _settings(args)
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
