"""``aml-console config ...``: init, get-contexts, current-context, use-context, view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    emit,
    errors_as_exit,
    fail,
    new_table,
    safe,
    stdout,
)
from console.errors import ConfigError

app = typer.Typer(help="Config file and contexts (as kubectl config).", no_args_is_help=True)


@app.command("init")
def init(
    path: Path | None = typer.Option(
        None, "--path", help="Where to write (default: $XDG_CONFIG_HOME/aml-console/config.toml)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Write a config with a lab context and a commented production one."""
    from console import locations, shipped
    from console.private_files import private_dir, write_private

    with errors_as_exit():
        target = path or locations.config_file()
        if target.exists() and not force:
            fail(f"{target} exists; pass --force to replace it")
        template = shipped.config_template().read_bytes()
        try:
            private_dir(target.parent, tighten=False)
            write_private(target, template)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
        stdout.print(f"wrote {safe(target)}: contexts lab (current) and prod (commented out)")
        stdout.print("next: aml-console config get-contexts; aml-console doctor")


def _contexts(ctx: typer.Context) -> tuple[Any, str | None]:
    """The config file the console would read, and the context it would choose (None when
    it cannot choose one)."""
    from console.config_files import choose_context, find_config, read_config

    cli = context(ctx)
    config = read_config(find_config(cli.config_path))
    try:
        chosen: str | None = choose_context(config, cli.context)
    except ConfigError:
        chosen = None
    return config, chosen


@app.command("get-contexts")
def get_contexts(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """The contexts of the config file; `*` marks the one in use."""
    from console.urls import redact_url

    with errors_as_exit():
        config, chosen = _contexts(ctx)
        rows = []
        for name, body in config.contexts.items():
            prometheus = body.get("prometheus", {})
            url = prometheus.get("url", "") if isinstance(prometheus, dict) else ""
            rows.append(
                {
                    "name": name,
                    "current": name == chosen,
                    "environment": str(body.get("environment", "lab")),
                    "read_only": bool(body.get("read_only", False)),
                    "prometheus": redact_url(str(url)) if url else "(lab default)",
                }
            )

        def render() -> None:
            stdout.print(f"config: {safe(config.source.path)} ({config.source.origin})")
            grid = new_table("current", "name", "environment", "read-only", "prometheus")
            for row in rows:
                grid.add_row(
                    "*" if row["current"] else "",
                    safe(row["name"]),
                    safe(row["environment"]),
                    "yes" if row["read_only"] else "no",
                    safe(row["prometheus"]),
                )
            stdout.print(grid)

        emit(rows, output, render)


@app.command("current-context")
def current_context(ctx: typer.Context) -> None:
    """The context in use."""
    with errors_as_exit():
        config, chosen = _contexts(ctx)
        if chosen is None:
            from console.config_files import choose_context

            choose_context(config, context(ctx).context)  # raises, naming the contexts
        stdout.print(safe(chosen))


@app.command("use-context")
def use_context(ctx: typer.Context, name: str) -> None:
    """Make NAME the config file's current context."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    from console.config_files import find_config, read_config
    from console.private_files import write_private

    with errors_as_exit():
        config = read_config(find_config(context(ctx).config_path))
        path = config.source.path.resolve()  # through a dotfile manager's link, not over it
        if not config.source.writable:
            fail("no config file to write (the built-in lab is in use): run `config init`")
        if name not in config.contexts:
            fail(f"no context {name[:63]!r} in {path} (contexts: {', '.join(config.contexts)})")
        if not config.has_contexts:
            fail(f"{path} holds one context ({name}) and no [contexts]: nothing to switch")
        try:
            document = tomlkit.parse(path.read_text(encoding="utf-8"))
            document["current_context"] = name
            write_private(path, tomlkit.dumps(document))
        except TOMLKitError as exc:
            raise ConfigError(f"{path}: cannot edit: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        stdout.print(f"switched to context {safe(name)} ({safe(path)})")


@app.command("view")
def view(ctx: typer.Context, output: OutputFormat = OutputOption) -> None:
    """The settings of the context in use, after environment overrides; secrets hidden."""
    import json

    with errors_as_exit():
        settings = context(ctx).settings
        data: dict[str, Any] = {"context": settings.context, "config": str(settings.config_path)}
        # SecretStr dumps as "**********"; credentials inside URLs are cut out too.
        data |= _without_url_credentials(json.loads(settings.model_dump_json()))

        def render() -> None:
            stdout.print(json.dumps(data, indent=2))

        emit(data, output, render)


def _without_url_credentials(value: Any) -> Any:
    """Every string that holds a URL, with its userinfo replaced (``redis://***@host``)."""
    from console.urls import redact_url

    if isinstance(value, dict):
        return {k: _without_url_credentials(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_url_credentials(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value
