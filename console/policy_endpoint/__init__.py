"""The policy decision endpoint: ``aml-console policy serve``, which a gateway in front of a
model server asks before it proxies a request (NGINX ``auth_request``, Envoy ``ext_authz`` as
an HTTP service, Traefik ``forwardAuth``). It reads the Redis policy store the runbooks write,
through the same decisions as the lab gateway (console.adapters.policy_decisions: cache, pub/sub
invalidation, fail-open/closed, budgets counted in Redis across every enforcement point).

Paths (any method; a suffix is accepted and ignored, as Envoy's ``path_prefix`` appends the
request's own path: ``/v1/decision/v2/models/digits/infer``):

``/v1/decision``  (Envoy, Traefik, anything that passes statuses through)
    200  allowed; ``X-AML-Client: <client id>`` (for the upstream's logs), and for a client
         with an output hardening ``X-AML-Output: label-only|top1|rounded;decimals=<n>``
    403  blocked; ``X-AML-Block-Id: blk-<12 hex>``, ``X-AML-Client``. Never the reason text.
    429  over its budget; ``Retry-After: <seconds to the end of the one-minute window>``
    503  policy store down under ``redis_failure_mode = "closed"``; ``Retry-After: 1``
    401  no valid client id (none, or not 1-128 of letters, digits and . _ : @ -)

``/v1/decision/nginx``  (NGINX ``auth_request`` passes on 2xx and 401/403 only: any other
status of the subrequest becomes a 500)
    200 and 401 as above; every other denial is a 403 with ``X-AML-Status: 403|429|503`` and
    ``X-AML-Retry-After: <seconds>`` (429 and 503), beside ``X-AML-Block-Id`` for a block. The
    nginx side reads them with ``auth_request_set $aml_status $upstream_http_x_aml_status``
    and answers 429 (with ``Retry-After``) from an ``error_page 403`` location.

``/healthz`` 200 while the process serves (``{"status": "ok", "policy_store_up": ...}``);
``/metrics`` its own Prometheus registry: ``aml_policy_decisions_total{outcome=
"allow|block|budget|error"}`` (error: no policy decision, a 401 or a fail-closed 503),
``aml_policy_decision_seconds``, ``aml_policy_redis_errors_total``, ``aml_policy_store_up``,
``aml_policy_shadow_refusals_total{client}`` (requests a shadow budget would have refused; only
clients with a shadow budget, at most 100 of them, the rest ``other``).

Identity (``[policy_endpoint]``): the ``client_header`` (``X-Client-Id``), else a bearer key in
``api_key_header`` (``Authorization``) as ``key-<16 hex>``, HMAC-SHA256 under the pseudonym
secret, the same id the lab gateway gives the key. For Envoy, list both headers in the
``ext_authz`` ``allowed_headers`` (and ``X-AML-Client`` in ``allowed_upstream_headers``).
Header values are attacker-chosen: they are checked and bounded before use and never copied
into an answer unchecked.
"""
