"""Redis (the policy store and locks), the audit log, the trace and sample stores, and the
context's ACL policy."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from console.adapters import redis_probe
from console.adapters.backends import Backends
from console.config import Settings
from console.doctor.model import Check, EndpointReport, Findings, describe
from console.durations import format_duration
from console.errors import ConsoleError
from console.urls import redact_url

PRIVATE_MODE = 0o600


async def check_redis(backends: Backends, findings: Findings) -> EndpointReport:
    settings = backends.settings
    redis = backends.redis
    findings.start_clock()
    try:
        await redis_probe.ping(redis)
    except ConsoleError as exc:
        findings.first_call_failed(exc, "a Redis server")
        return findings.report()
    username = _redis_user(settings.redis.url)
    findings.answered(f"as {username}" if username else "no ACL user (default)")
    try:
        findings.version = await redis_probe.server_version(redis) or None
        findings.passed("version", findings.version or "not reported")
    except ConsoleError as exc:
        # An ACL user may be denied INFO; the console never needs it.
        findings.passed("version", f"not reported ({describe(exc)})")
    prefix = settings.redis.key_prefix
    check = f"writes under {prefix}:"
    if settings.read_only:
        findings.passed(check, "skipped (read-only): a read-only console writes nothing")
        return findings.report()
    try:
        key = await redis_probe.write_probe(redis, prefix)
    except ConsoleError as exc:
        findings.call_failed(
            check,
            exc,
            f"the console writes blocks, budgets and locks under {prefix}: grant the user "
            f"write access to {prefix}:* (ACL ~{prefix}:*)",
        )
        return findings.report()
    findings.passed(check, f"wrote, read and removed {key}")
    return findings.report()


def _redis_user(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    try:
        return unquote(urlsplit(url).username or "")
    except ValueError:
        return ""


async def check_audit(settings: Settings, findings: Findings) -> EndpointReport:
    checks = await asyncio.to_thread(_audit_checks, settings)
    findings.checks.extend(checks)
    return findings.report()


def _audit_checks(settings: Settings) -> list[Check]:
    from console.audit.verify import verify_log
    from console.audit.witness import witness_path_for

    checks: list[Check] = []
    try:
        key = settings.audit_key()
    except ConsoleError as exc:
        key = None
        checks.append(Check("key", False, describe(exc), "make the key file readable by you"))
    else:
        if key is None:
            checks.append(
                Check(
                    "key",
                    False,
                    "no audit HMAC key configured",
                    "set audit.hmac_key_file (a 0600 file) or CONSOLE_AUDIT__HMAC_KEY",
                )
            )
        else:
            checks.append(Check("key", True, _key_source(settings)))
    try:
        witness = witness_path_for(settings)
    except ConsoleError as exc:
        checks.append(Check("verifies", False, describe(exc), "set audit.witness_path"))
        return checks
    files = [settings.audit_path, settings.audit_checkpoint_path, witness]
    if key is not None:
        if not any(path is not None and path.exists() for path in files):
            checks.append(Check("verifies", True, "no log yet: nothing audited here"))
        else:
            try:
                report = verify_log(
                    settings.audit_path, key, settings.audit_checkpoint_path, witness
                )
            except ConsoleError as exc:
                checks.append(Check("verifies", False, describe(exc), _VERIFY_HINT))
            else:
                hint = "" if report.ok else _VERIFY_HINT
                checks.append(Check("verifies", report.ok, report.summary(), hint))
    key_file = settings.audit_key_file if settings.audit.hmac_key is None else None
    checks.append(_modes([*files, key_file]))
    return checks


_VERIFY_HINT = (
    "the log was changed or cut: run aml-console audit verify for the first bad record, "
    "and keep the file as evidence"
)


def _key_source(settings: Settings) -> str:
    if settings.audit.hmac_key is not None:
        return "from the configuration or CONSOLE_AUDIT__HMAC_KEY"
    return f"from {settings.audit_key_file}"


def _modes(paths: list[Path | None]) -> Check:
    loose: list[str] = []
    for path in paths:
        if path is None:
            continue
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            loose.append(f"{path} ({exc.strerror or exc})")
            continue
        if mode & ~PRIVATE_MODE & 0o777:
            loose.append(f"{path} is {mode:04o}")
    if loose:
        return Check(
            "file modes",
            False,
            "; ".join(loose),
            "chmod 600 each of them: the log, its head and witness, and the key are yours only",
        )
    return Check("file modes", True, "0600 (or stricter)")


async def check_store(location: str, section: str, findings: Findings) -> EndpointReport:
    findings.checks.append(await asyncio.to_thread(_readable, location, section))
    return findings.report()


def _readable(location: str, section: str) -> Check:
    """A local directory (or, for traces, a file) the console can list and read."""
    if "://" in location:
        return Check(
            "readable",
            False,
            f"{redact_url(location)} is a URL: the console reads only a local {section} store",
            f"point [{section}].path at the directory the gateway writes",
        )
    path = Path(location)
    hint = f"check [{section}].path: the gateway writes its {section} there"
    try:
        if path.is_dir():
            count = sum(1 for _ in os.scandir(path))
            return Check("readable", True, f"directory, {count} entries")
        if path.is_file():
            with path.open("rb") as handle:
                handle.read(1)
            return Check("readable", True, "file")
    except OSError as exc:
        return Check("readable", False, f"{path}: {exc.strerror or exc}", hint)
    return Check("readable", False, f"{path} does not exist", hint)


async def check_acl(settings: Settings, findings: Findings) -> EndpointReport:
    findings.checks.append(await asyncio.to_thread(_acl_check, settings))
    findings.checks += _who_checks(settings)
    return findings.report()


def _who_checks(settings: Settings) -> list[Check]:
    """Who acts here, from where, and which runs wait for a second operator."""
    rule = settings.approvals
    claimed = settings.identity.source == "auto"
    caveat = "; a self-claimed name ([identity] source = auto)" if claimed else ""
    operator = Check("operator", True, f"{settings.operator} ({settings.operator_source}){caveat}")
    if rule.required == "never":
        detail = "only runbooks with approval: wait for a second operator"
    else:
        what = "every run" if rule.required == "always" else "every run that changes something"
        who = ", ".join(rule.approvers) or "any other operator the ACL allows"
        detail = f"{what} waits for approval by {who} (ttl {format_duration(rule.ttl)})"
    return [operator, Check("approvals", True, detail)]


def _acl_check(settings: Settings) -> Check:
    from console.acl import load_policy, rules_for

    path = settings.acl.path
    if path is None:
        return Check("policy", True, "none: every operator may run every runbook")
    try:
        policy = load_policy(path)
    except ConsoleError as exc:
        return Check(
            "policy", False, describe(exc), "fix the file: until then every run is refused"
        )
    mine = [rule.name for rule in rules_for(policy, settings.operator)]
    return Check(
        "policy",
        True,
        f"{len(policy.rules)} rules, {len(policy.groups)} groups; "
        f"{len(mine)} apply to {settings.operator!r}" + (f" ({', '.join(mine)})" if mine else ""),
    )
