"""The console's read side: what each on-call view shows, fetched from the real systems
(Prometheus or VictoriaMetrics, Alertmanager, MLflow, the Redis policy store, the audit log,
the sample store and traces) into typed snapshots.

The TUI renders these snapshots; nothing here imports Textual. Every PromQL expression a view
uses is defined once, in ``queries``, so the TUI can show it (the panel inspector).
"""
