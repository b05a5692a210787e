"""Who the operator is, by the context's ``[identity] source``, and where the name came from,
so the screen can say "alice (OS user)" and a refusal can say why a name was not taken.

The name is attacker-adjacent text (an SSO header, an environment variable): it must be 1-128
printable characters, or the console refuses to start rather than write it into the audit log.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from console.config_policy import IdentitySection

OPERATOR_ENV = "CONSOLE_OPERATOR"


@dataclass(frozen=True)
class Operator:
    name: str
    source: str
    """``OS user``, ``$CONSOLE_OPERATOR``, ``set`` (``--operator`` or the file), or
    ``SSO X-Forwarded-User``."""


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def header_env(header: str) -> str:
    """The CGI name a wrapper passes a request header under: ``HTTP_X_FORWARDED_USER``."""
    return "HTTP_" + header.upper().replace("-", "_")


def check_name(name: str) -> str:
    if not name or not name.strip() or len(name) > 128 or not name.isprintable():
        raise ValueError("operator must be 1-128 printable characters")
    if name != name.strip():
        raise ValueError(f"operator {name!r} starts or ends with a space")
    return name


def resolve_operator(identity: IdentitySection, given: str | None) -> Operator:
    """The operator for ``identity``; ``given`` is a name set explicitly (``--operator``,
    ``$CONSOLE_OPERATOR`` or the file), None when none was. Raises ValueError (one line) when
    the source forbids the given name or cannot name anyone."""
    if identity.source == "sso-header":
        variable = header_env(identity.sso_header)
        claimed = os.environ.get(variable, "").strip()
        if not claimed:
            raise ValueError(
                f"identity.source is sso-header, and the SSO wrapper set no {identity.sso_header}"
                f" (${variable}): refusing to act as nobody"
            )
        if given is not None and given != claimed:
            raise ValueError(
                f"identity.source is sso-header: the operator is {claimed!r} from "
                f"{identity.sso_header}, not {given!r}"
            )
        return Operator(check_name(claimed), f"SSO {identity.sso_header}")
    user = os_user()
    if identity.source == "os":
        if given is not None and given != user:
            raise ValueError(
                f"identity.source is os: the operator is the OS user {user!r}, not {given!r} "
                f"(unset ${OPERATOR_ENV} and --operator)"
            )
        return Operator(check_name(user), "OS user")
    if given is None:
        return Operator(check_name(user), "OS user")
    source = f"${OPERATOR_ENV}" if os.environ.get(OPERATOR_ENV) == given else "set"
    return Operator(check_name(given), source)
