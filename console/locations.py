"""Where the console keeps its files: the XDG base directories (``$XDG_CONFIG_HOME``,
``$XDG_STATE_HOME``), each with an ``aml-console`` folder, and never the working directory.

A relative or empty XDG variable is ignored, as the XDG spec says.
"""

from __future__ import annotations

import os
from pathlib import Path

from console.errors import ConfigError

APP = "aml-console"


def _base(variable: str, fallback: tuple[str, ...]) -> Path:
    value = os.environ.get(variable, "")
    if value and os.path.isabs(value):
        return Path(value)
    try:
        return Path.home().joinpath(*fallback)
    except RuntimeError:  # no $HOME and no passwd entry
        raise ConfigError(f"no home directory: set {variable}") from None


def config_home() -> Path:
    """``$XDG_CONFIG_HOME`` (``~/.config``)."""
    return _base("XDG_CONFIG_HOME", (".config",))


def state_home() -> Path:
    """``$XDG_STATE_HOME`` (``~/.local/state``)."""
    return _base("XDG_STATE_HOME", (".local", "state"))


def config_dir() -> Path:
    """The user's console folder: ``config.toml`` and ``runbooks/``, ``drills/``."""
    return config_home() / APP


def config_file() -> Path:
    return config_dir() / "config.toml"


def user_runbooks_dir() -> Path:
    return config_dir() / "runbooks"


def user_drills_dir() -> Path:
    return config_dir() / "drills"


def context_state_dir(context: str) -> Path:
    """The default run dir of a context: its runs, audit log, lab data and secrets."""
    return state_home() / APP / "contexts" / context
