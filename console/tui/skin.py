"""The environment's colour (k9s colours each context): the label on every screen and in the
confirmation, so nobody mistakes prod for the lab at 3 a.m."""

from __future__ import annotations

FOREGROUND = {
    "red": "white",
    "yellow": "black",
    "green": "black",
    "blue": "white",
    "magenta": "white",
}


def environment_color(environment: str, configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    name = environment.lower()
    if name in ("prod", "production", "live"):
        return "red"
    if name in ("staging", "stage", "preprod", "pre-prod"):
        return "yellow"
    return "green"


def environment_style(environment: str, configured: str = "auto") -> str:
    color = environment_color(environment, configured)
    return f"bold {FOREGROUND[color]} on {color}"
