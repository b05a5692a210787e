"""What an HTTP endpoint's section says about its credentials and TLS, read with ``getattr``:
a section without those options (a file from before them) simply has none."""

from __future__ import annotations

from console.doctor.model import Findings


def credentials_of(section: object) -> str:
    """What the console sends to prove who it is, without any secret."""
    summary = getattr(section, "credentials_summary", None)
    text = summary() if callable(summary) else ""
    return str(text) or "no credentials"


def tls_check(findings: Findings, section: object) -> None:
    """A failed check when the endpoint's certificate is not verified."""
    tls = getattr(section, "tls_config", None)
    if tls is None or not getattr(tls, "insecure_skip_verify", False):
        return
    where = findings.endpoint.section
    findings.failed(
        "tls verification",
        "insecure_skip_verify = true: the server's certificate is not checked",
        f"!! anyone on the path can read and change this traffic and its credentials: set "
        f"[{where}].tls_config.ca_file to the CA that signs the server's certificate and "
        "remove insecure_skip_verify",
    )
