"""The lab's guarded inference gateway: an ASGI app speaking the Open Inference (V2) protocol.

Per request: client identity -> Redis policy (403 blocked, 429 over budget) -> ONNX model
(the registry's ``champion``, hash-checked) -> feature-squeezing and PRADA-style extraction
scores -> Prometheus metrics, an OTLP span (JSON lines) and, for flagged inputs, a sample.

Modules: ``app`` (routes, lifespan), ``service`` (the request pipeline), ``protocol`` (V2
request/response), ``models`` (model store), ``telemetry`` (metrics, spans), ``samples``,
``sinks`` (off-loop JSONL writers). The policy decisions are ``console.adapters.
policy_decisions``, shared with ``aml-console policy serve``.
Run it with ``python -m console.lab.gateway``.
"""
