"""Incidents: what groups an attack's alerts, the runbook runs and notes done while it was
open, and the postmortem drafted from them (``model``, ``store``, ``timeline``, ``times``,
``recurrence``, ``export_*``)."""
