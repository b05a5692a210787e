"""``aml-console model sign|verify|keygen``: OpenSSF model-signing signatures of registry
versions, for teams whose own pipeline registers their models (the lab signs its own).

``sign`` uploads ``<artifact>.sig`` beside a version's ONNX artifact (after checking the bytes
against the version's ``onnx_sha256`` tag); ``verify`` runs the checks the gateway and replay
run before loading a version (sha256 tag, then the signature) and exits 1 with the reason when
they refuse it. The work is in ``console.model_signing``; heavy imports stay in the commands.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from console.cli.common import (
    OutputFormat,
    OutputOption,
    context,
    emit,
    errors_as_exit,
    fail,
    print_json,
    safe,
    stdout,
)
from console.errors import read_only_refusal

if TYPE_CHECKING:
    from console.adapters.mlflow import MlflowRegistry
    from console.config import Settings

app = typer.Typer(
    help="Sign registry versions' ONNX artifacts and verify their signatures.",
    no_args_is_help=True,
)

VersionOption = typer.Option(..., "--version", "-V", help="Registry version number.")


@app.command("sign")
def sign(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Registered model name."),
    version: str = VersionOption,
    key: Path | None = typer.Option(
        None,
        "--key",
        help="PEM EC P-256 private key (default: \\[models] signing_key, else the lab's "
        "<run_dir>/secrets/model-signing.key).",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Sign a version's artifact and upload the signature beside it (<artifact>.sig)."""
    from console import model_signing

    with errors_as_exit():
        settings = context(ctx).settings
        if settings.read_only:
            raise read_only_refusal("model sign")
        private = key or model_signing.private_key_path(settings)
        result = asyncio.run(_with_registry(settings, lambda r: _sign(r, model, version, private)))
    emit(result, output, lambda: stdout.print(_signed_line(result)))


@app.command("verify")
def verify(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Registered model name."),
    version: str = VersionOption,
    key: list[Path] = typer.Option(
        [],
        "--key",
        help="PEM public key to verify against (repeatable; default: \\[models] "
        "signing_public_keys, else the lab's <run_dir>/secrets/model-signing.pub).",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Check a version as the gateway does (sha256 tag, then signature); exit 1 if refused."""
    from console import model_signing
    from console.errors import ArtifactRefused

    with errors_as_exit():
        settings = context(ctx).settings
        policy = model_signing.signing_policy(settings)
        keys = tuple(key) or policy.public_keys
        try:
            result = asyncio.run(
                _with_registry(settings, lambda r: _verify(r, model, version, keys))
            )
        except ArtifactRefused as exc:
            refused = {
                "model": model,
                "version": version,
                "verified": False,
                "reason": exc.reason,
                "message": str(exc),
            }
            if output is OutputFormat.json:
                print_json(refused)
                raise typer.Exit(1) from None
            fail(f"{model} version {version} refused ({exc.reason}): {exc}")
    emit(result, output, lambda: stdout.print(_verified_line(result)))


@app.command("keygen")
def keygen(
    ctx: typer.Context,
    key: Path | None = typer.Option(
        None,
        "--key",
        help="Where the private key goes (default: \\[models] signing_key, else "
        "<run_dir>/secrets/model-signing.key); the public key goes beside it (.pub).",
    ),
) -> None:
    """Make an EC P-256 key pair (private key 0600); never overwrites an existing key."""
    from console import model_signing
    from console.errors import ConfigError

    with errors_as_exit():
        settings = context(ctx).settings
        private = key or model_signing.private_key_path(settings)
        if private.exists():
            raise ConfigError(f"{private} exists already: remove it first to make a new pair")
        public = model_signing.generate_key_pair(private)
    stdout.print(f"private key {safe(private)} (0600), public key {safe(public)}")


async def _with_registry(settings: Settings, use: Any) -> dict[str, Any]:
    from console.adapters.mlflow import MlflowRegistry

    cfg = settings.mlflow
    registry = MlflowRegistry.connect(cfg.url, cfg.timeout_s, options=cfg)
    try:
        result: dict[str, Any] = await use(registry)
        return result
    finally:
        await registry.aclose()


async def _checked_artifact(registry: MlflowRegistry, model: str, version: str) -> bytes:
    """The version's artifact after its sha256 tag check (ArtifactRefused, ParameterError)."""
    from console.errors import ArtifactRefused, ParameterError
    from console.model_artifacts import check_sha256

    found = await registry.get_version(model, version)
    if found is None:
        raise ParameterError(f"{model} has no version {version!r} in the registry")
    try:
        onnx = await registry.download_artifact(model, version)
    except ArtifactRefused as exc:
        raise ArtifactRefused(exc.reason, f"{model} version {version}: {exc}") from None
    check_sha256(model, version, found.tags.get("onnx_sha256", ""), onnx)
    return onnx


async def _sign(registry: MlflowRegistry, model: str, version: str, key: Path) -> dict[str, Any]:
    import hashlib

    from console import model_signing

    onnx = await _checked_artifact(registry, model, version)
    signature = await asyncio.to_thread(model_signing.sign, onnx, key)
    uri = await registry.upload_sibling(model, version, model_signing.SIGNATURE_SUFFIX, signature)
    return {
        "model": model,
        "version": version,
        "sha256": hashlib.sha256(onnx).hexdigest(),
        "signature": uri,
        "key": str(key),
    }


async def _verify(
    registry: MlflowRegistry, model: str, version: str, keys: tuple[Path, ...]
) -> dict[str, Any]:
    import hashlib

    from console import model_signing

    onnx = await _checked_artifact(registry, model, version)
    signature = await registry.download_sibling(
        model, version, model_signing.SIGNATURE_SUFFIX, model_signing.MAX_SIGNATURE_BYTES
    )
    used = await asyncio.to_thread(model_signing.verify, model, version, onnx, signature, keys)
    return {
        "model": model,
        "version": version,
        "verified": True,
        "sha256": hashlib.sha256(onnx).hexdigest(),
        "key": str(used),
    }


def _signed_line(result: dict[str, Any]) -> str:
    return (
        f"signed {safe(result['model'])} version {safe(result['version'])} "
        f"(sha256 {result['sha256'][:12]}): {safe(result['signature'])}"
    )


def _verified_line(result: dict[str, Any]) -> str:
    return (
        f"{safe(result['model'])} version {safe(result['version'])}: signature verified "
        f"(sha256 {result['sha256'][:12]}, key {safe(result['key'])})"
    )
