"""Incident tests: the store and the CLI on a console of their own (run dir, audit log), and
postmortems of a manual incident and of a drill on a lab stack (helpers: incident_support)."""
