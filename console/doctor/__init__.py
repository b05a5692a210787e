"""``aml-console doctor``: every endpoint of the settings, checked for what the console needs
from it (reachable, authenticated, version, the metric contract and rules, a receiver, the
served models, a writable key prefix, a verifying audit log, readable stores, the artifact
signing policy and whether each served champion carries a trusted robustness record).

A service: it reads the backends through the adapters (and the audit log through the audit
service), and says for each failure what to do.
"""

from console.doctor.model import Check, EndpointReport
from console.doctor.run import DEADLINE_S, run_doctor

__all__ = ["DEADLINE_S", "Check", "EndpointReport", "run_doctor"]
