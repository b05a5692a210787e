"""Requested versions (``champion,previous,3``: aliases or numbers) resolved in the registry."""

from __future__ import annotations

from console.adapters.mlflow import MlflowRegistry, check_alias
from console.errors import ParameterError, ReplayError
from console.replay.model import VersionRef

MAX_VERSIONS = 8


def parse_specs(text: str) -> tuple[str, ...]:
    """``"champion, previous,3"`` -> ``("champion", "previous", "3")``; ReplayError if empty,
    too many, or a name is not an alias MLflow could hold."""
    specs = tuple(s.strip() for s in text.split(",") if s.strip())
    if not specs:
        raise ReplayError("no versions given: --versions champion,previous (aliases or numbers)")
    if len(specs) > MAX_VERSIONS:
        raise ReplayError(f"at most {MAX_VERSIONS} versions per replay, got {len(specs)}")
    for spec in specs:
        if not spec.isdigit():
            try:
                check_alias(spec)
            except ParameterError:
                raise ReplayError(
                    f"version {spec[:40]!r} is neither a version number nor an alias name"
                ) from None
    return specs


async def resolve_versions(
    registry: MlflowRegistry, model: str, specs: tuple[str, ...]
) -> list[VersionRef]:
    """Each spec's version, its ``onnx_sha256`` tag and aliases, in the order asked. A version
    asked twice (``champion`` and ``2``) is kept once, under the first spec."""
    registered = await registry.get_model(model)
    if registered is None:
        raise ReplayError(f"model {model!r} is not in the registry")
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(registered.aliases.items()):
        by_version.setdefault(version, []).append(alias)
    refs: list[VersionRef] = []
    for spec in specs:
        if spec.isdigit():
            number = str(int(spec))
        elif spec in registered.aliases:
            number = registered.aliases[spec]
        else:
            known = ", ".join(f"{a} -> {v}" for a, v in sorted(registered.aliases.items()))
            raise ReplayError(f"model {model!r} has no alias {spec!r} (aliases: {known or 'none'})")
        if any(ref.version == number for ref in refs):
            continue
        found = await registry.get_version(model, number)
        if found is None:
            versions = ", ".join(v.version for v in await registry.list_versions(model))
            raise ReplayError(
                f"model {model!r} has no version {number} (versions: {versions or 'none'})"
            )
        refs.append(
            VersionRef(
                spec=spec if not spec.isdigit() else number,
                version=number,
                sha256=found.tags.get("onnx_sha256", ""),
                aliases=tuple(by_version.get(number, ())),
            )
        )
    return refs
