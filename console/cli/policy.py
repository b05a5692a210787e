"""``aml-console policy serve``: the policy decision endpoint gateways ask before they proxy
(console/policy_endpoint/). The service loads inside the command: ``--help`` stays fast."""

from __future__ import annotations

import typer

from console.cli.common import context, errors_as_exit, safe
from console.cli.common import stderr as err

app = typer.Typer(
    help="The policy decision endpoint for NGINX auth_request, Envoy ext_authz, Traefik "
    "forwardAuth.",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    ctx: typer.Context,
    listen: str | None = typer.Option(
        None,
        "--listen",
        help="host:port to serve on (default: [policy_endpoint] listen, 127.0.0.1:18090).",
    ),
) -> None:
    """Answer /v1/decision (200, 403 blocked, 429 over budget) and /v1/decision/nginx from
    the Redis policy store; /metrics, /healthz."""
    with errors_as_exit():
        settings = context(ctx).settings
        from console.policy_endpoint.serve import serve as run

        run(
            settings,
            listen if listen is not None else settings.policy_endpoint.listen,
            on_listening=lambda url: err.print(f"policy decisions on {safe(url)}"),
        )
