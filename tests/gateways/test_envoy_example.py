"""The shipped Envoy example (docs/gateways/envoy-ext-authz.yaml) agrees with the policy
endpoint it points at: the path that passes statuses through, the headers the endpoint reads
by default, the header it answers with, and its default address. (No Envoy binary is installed
here; the NGINX snippet is the one run end to end, test_nginx_auth_request.py.)"""

from __future__ import annotations

from typing import Any

import yaml

from console import shipped
from console.config_policy import PolicyEndpointSection


def _ext_authz() -> tuple[dict[str, Any], dict[str, Any]]:
    config = yaml.safe_load((shipped.gateways_dir() / "envoy-ext-authz.yaml").read_text())
    resources = config["static_resources"]
    [listener] = resources["listeners"]
    [manager] = listener["filter_chains"][0]["filters"]
    filters = {f["name"]: f["typed_config"] for f in manager["typed_config"]["http_filters"]}
    clusters = {c["name"]: c for c in resources["clusters"]}
    return filters["envoy.filters.http.ext_authz"], clusters


def _patterns(section: dict[str, Any]) -> set[str]:
    return {p["exact"] for p in section["patterns"]}


def test_the_envoy_example_asks_the_status_passing_path_with_the_endpoints_headers() -> None:
    authz, clusters = _ext_authz()
    service = authz["http_service"]
    assert service["path_prefix"] == "/v1/decision"  # not /v1/decision/nginx
    defaults = PolicyEndpointSection()
    sent = _patterns(service["authorization_request"]["allowed_headers"])
    assert {defaults.client_header.lower(), defaults.api_key_header.lower()} <= sent
    response = service["authorization_response"]
    assert "x-aml-client" in _patterns(response["allowed_upstream_headers"])
    assert {"retry-after", "x-aml-block-id"} <= _patterns(response["allowed_client_headers"])
    assert authz["failure_mode_allow"] is False  # fails closed unless the operator says so
    host, port = defaults.listen.rsplit(":", 1)
    cluster = clusters[service["server_uri"]["cluster"]]
    [endpoint] = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == (host, int(port))
    assert service["server_uri"]["uri"] == f"http://{defaults.listen}"
