"""One gateway per xdist worker for the attack tests, started by the real launcher on a free
port with its own run dir and Redis key prefix, against the session lab's Redis and MLflow.
It serves two freshly seeded models: one for traffic and attacks, one for poisoning."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from attacks_support import AttackLab, attack_env, settings_from
from support import unavailable

from console.errors import ConsoleError
from console.lab import services
from console.lab.seed import seed_model


@pytest.fixture(scope="session")
def attack_lab(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackLab]:
    tag = uuid.uuid4().hex[:10]
    models = [f"digits-atk-{tag}", f"digits-poison-{tag}"]
    try:
        for name in models:
            seed_model(lab.settings.mlflow.url, name)
    except ConsoleError as exc:
        unavailable(str(exc))
    run_dir = tmp_path_factory.mktemp("attacks") / "run"
    env = attack_env(lab.config_path, run_dir, models)
    with pytest.MonkeyPatch.context() as mp:
        settings = settings_from(env, mp)
        full_env = {**lab.env, **env}
    try:
        services.up(settings, ["gateway"], seed=False)
    except ConsoleError as exc:
        pytest.fail(f"launcher could not start the gateway: {exc}", pytrace=False)
    try:
        yield AttackLab(settings, full_env, models[0], models[1])
    finally:
        services.down(settings, ["gateway"])
