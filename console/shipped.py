"""What the console ships inside its package (``console/_shipped/``, built into the wheel as
package data): the runbooks, the drill scenarios, the Prometheus rules with their promtool
tests, the built-in lab context, the template ``config init`` writes and the gateway snippets.

In a checkout these are links to the top-level ``runbooks/``, ``configs/`` and
``docs/gateways/``; an installed wheel carries copies. Either way they are plain files on disk:
the lab hands the rule folder to Prometheus, which reads paths, not package resources.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _root() -> Path:
    return Path(str(files("console") / "_shipped"))


def runbooks_dir() -> Path:
    return _root() / "runbooks"


def drills_dir() -> Path:
    return _root() / "drills"


def rules_dir() -> Path:
    """The alert and recording rules (``*.yml``) and their promtool tests (``tests/``)."""
    return _root() / "prometheus"


def lab_config() -> Path:
    """The built-in lab context, used when no config file is found."""
    return _root() / "lab.toml"


def config_template() -> Path:
    """What ``aml-console config init`` writes: a lab context and a commented prod one."""
    return _root() / "config-template.toml"


def gateways_dir() -> Path:
    """The gateway snippets of docs/gateways/: ``nginx.conf`` (a template the lab renders) and
    ``envoy-ext-authz.yaml``."""
    return _root() / "gateways"
