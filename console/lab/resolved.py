"""Settings handed from the launcher to a service it starts (the gateway, the traffic
generator): resolved once in the launcher, read back in the child.

The child starts in its own directory with the launcher's environment, so the launcher
resolves relative paths and applies the environment before writing; the child must then not
apply ``CONSOLE_*`` variables a second time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from console.config import Settings, load_settings
from console.errors import ConsoleError
from console.urls import redact_urls_in


def dump(settings: Settings, sections: Iterable[str]) -> str:
    """JSON of ``sections`` of ``settings`` (plus environment and run_dir), paths absolute."""
    data = settings.model_dump(mode="json", include={"environment", "run_dir", *sections})
    data["run_dir"] = str(settings.run_dir.resolve())
    for section in ("traces", "samples"):
        if section in data:
            location = data[section]["path"]
            if "://" not in location:
                data[section]["path"] = str(Path(location).resolve())
    return json.dumps(data, indent=2) + "\n"


def load(path: Path) -> Settings:
    """The settings a launcher wrote with ``dump``; ConsoleError if unreadable or invalid."""
    for key in [k for k in os.environ if k.startswith("CONSOLE_")]:
        del os.environ[key]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConsoleError(f"cannot read {path}: {exc}") from None
    try:
        return Settings(**data)
    except ValueError as exc:
        # pydantic quotes the values it refused: a backend URL's credentials among them.
        reason = redact_urls_in(" ".join(str(exc).split()))
        raise ConsoleError(f"{path}: invalid settings: {reason}") from None


def service_settings(prog: str, description: str | None, argv: list[str] | None) -> Settings:
    """A lab service's settings from its command line: ``--settings-json FILE`` (what the
    launcher passes) or ``--config lab.toml`` (by hand; default: as the console). Sets up the
    service's log format first. Raises ConsoleError if they cannot be read."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="TOML config (default: as the console)")
    source.add_argument("--settings-json", type=Path, help="resolved settings from the launcher")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    if args.settings_json is not None:
        return load(args.settings_json)
    return load_settings(args.config)


__all__ = ["dump", "load", "service_settings"]
