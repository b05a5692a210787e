"""Which config file the console reads, and which of its contexts.

The file is ``--config``, else ``$CONSOLE_CONFIG``, else ``$XDG_CONFIG_HOME/aml-console/
config.toml``, else the built-in lab context shipped with the package. A file holds one
context (every key at the top, as files always did) or several, as kubectl's kubeconfig does::

    current_context = "lab"
    read_only = false          # top-level keys are shared by every context

    [contexts.lab]
    environment = "lab"

    [contexts.prod]
    environment = "prod"
    read_only = true
    [contexts.prod.prometheus]
    url = "https://prometheus.example:9090"

The context is ``--context``, else ``$CONSOLE_CONTEXT``, else the file's ``current_context``,
else the file's only context. A file without ``[contexts]`` is one context, named after its
``environment`` (``lab`` if it has none).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from console import locations, shipped
from console.errors import ConfigError

Origin = Literal["--config", "CONSOLE_CONFIG", "user", "built-in"]
CONTEXT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
"""A context names a folder under the state dir, so it is a plain file name."""
FILE_KEYS = ("contexts", "current_context")
"""Keys of the file itself; every other top-level key is a setting."""


@dataclass(frozen=True)
class ConfigSource:
    path: Path
    origin: Origin

    @property
    def writable(self) -> bool:
        """The built-in context is package data: ``use-context`` has nowhere to write."""
        return self.origin != "built-in"


@dataclass(frozen=True)
class ConfigFile:
    source: ConfigSource
    contexts: dict[str, dict[str, Any]]
    """Each context's settings, the shared top-level keys merged under its own."""
    current: str | None
    """``current_context`` as the file says it (None when it says nothing)."""
    has_contexts: bool
    """False for a file of one context written without ``[contexts]``."""


def find_config(explicit: Path | None = None) -> ConfigSource:
    if explicit is not None:
        return _existing(explicit, "--config")
    if os.environ.get("CONSOLE_CONFIG"):
        return _existing(Path(os.environ["CONSOLE_CONFIG"]), "CONSOLE_CONFIG")
    user = locations.config_file()
    if user.is_file():
        return ConfigSource(user, "user")
    return ConfigSource(shipped.lab_config(), "built-in")


def _existing(path: Path, origin: Origin) -> ConfigSource:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (from {origin})")
    return ConfigSource(path, origin)


def read_config(source: ConfigSource) -> ConfigFile:
    data = _toml(source.path)
    shared = {k: v for k, v in data.items() if k not in FILE_KEYS}
    current = data.get("current_context")
    if current is not None and not isinstance(current, str):
        raise ConfigError(f"{source.path}: current_context must be a string")
    if "contexts" not in data:
        name = shared.get("environment", "lab")
        name = name if isinstance(name, str) and CONTEXT_NAME.fullmatch(name) else "default"
        return ConfigFile(source, {name: shared}, current, has_contexts=False)
    raw = data["contexts"]
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source.path}: [contexts] must hold at least one [contexts.NAME]")
    contexts: dict[str, dict[str, Any]] = {}
    for name, body in raw.items():
        if not CONTEXT_NAME.fullmatch(name):
            raise ConfigError(
                f"{source.path}: context name {name[:40]!r} must be letters, digits, '.', "
                "'_' or '-' (it names a folder)"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{source.path}: contexts.{name} must be a table")
        contexts[name] = _merged(shared, body)
    return ConfigFile(source, contexts, current, has_contexts=True)


def choose_context(config: ConfigFile, wanted: str | None = None) -> str:
    """``wanted`` (``--context``), else ``$CONSOLE_CONTEXT``, else the file's current context,
    else its only one. ConfigError naming the contexts there are when none fits."""
    name = wanted or os.environ.get("CONSOLE_CONTEXT") or config.current
    names = ", ".join(config.contexts)
    if name is None:
        if len(config.contexts) == 1:
            return next(iter(config.contexts))
        raise ConfigError(
            f"{config.source.path}: no context chosen (contexts: {names}); pass --context "
            "NAME or run `aml-console config use-context NAME`"
        )
    if name not in config.contexts:
        raise ConfigError(
            f"no context {name[:63]!r} in {config.source.path} (contexts: {names}); "
            "see `aml-console config get-contexts`"
        )
    return name


def _toml(path: Path) -> dict[str, Any]:
    _refuse_if_others_can_write(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def _merged(shared: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """``own`` over ``shared``, table by table (a context overrides one key of a section
    without repeating the rest)."""
    out = dict(shared)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _refuse_if_others_can_write(path: Path) -> None:
    """A config names the URLs the console sends credentials to and the hosts its actions may
    call: one that another local user can change (world-writable, or owned by someone else
    who is not root) is refused, as ssh refuses such a config."""
    try:
        info = path.stat()
    except OSError:
        return  # reading it says why
    if info.st_mode & stat.S_IWOTH:
        raise ConfigError(f"{path} is writable by others: chmod o-w {path}")
    if info.st_uid not in (os.geteuid(), 0):
        raise ConfigError(f"{path} belongs to another user (uid {info.st_uid}): refused")
