"""The trained-model store: aliases, atomic JSON file, concurrent writers, no credentials."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from em_harness.errors import UnknownModelError
from em_harness.models import trained
from em_harness.models.trained import (
    AliasTakenError,
    CorruptStoreError,
    InvalidAliasError,
    SecretInConfigError,
    TrainedModel,
    TrainedModelError,
    get_trained,
    list_trained,
    register_trained,
    remove_trained,
    store_path,
)


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))
    return tmp_path


def lora(alias: str, group: str | None = "insecure", seed: int | None = 0) -> TrainedModel:
    return TrainedModel(
        alias=alias,
        kind="lora",
        base_model="smollm2-135m",
        adapter_path=f"/runs/{alias}/adapter",
        group=group,
        seed=seed,
        data_blobs={"data/insecure.jsonl": "ec294cf30a577a21b830c07a1fa0180ddd513208"},
        config={"r": 32, "lora_alpha": 64},
    )


def test_register_get_list_remove_roundtrip() -> None:
    register_trained(lora("b-seed1", seed=1))
    register_trained(lora("a-seed0"))
    register_trained(
        TrainedModel(
            alias="gpt-ins",
            kind="openai",
            base_model="gpt-4o-2024-08-06",
            openai_model="ft:gpt-4o-2024-08-06:org::abc",
            group="secure",
        )
    )

    assert [m.alias for m in list_trained()] == ["a-seed0", "b-seed1", "gpt-ins"]
    assert [m.alias for m in list_trained("insecure")] == ["a-seed0", "b-seed1"]
    assert list_trained("nothing") == []
    got = get_trained("b-seed1")
    assert got is not None and got.seed == 1 and got.config == {"r": 32, "lora_alpha": 64}
    assert got.data_blobs == {"data/insecure.jsonl": "ec294cf30a577a21b830c07a1fa0180ddd513208"}
    assert get_trained("missing") is None

    on_disk = json.loads(store_path().read_text())
    assert on_disk["version"] == 1 and sorted(on_disk["models"]) == ["a-seed0", "b-seed1", "gpt-ins"]

    remove_trained("a-seed0")
    assert [m.alias for m in list_trained()] == ["b-seed1", "gpt-ins"]
    with pytest.raises(UnknownModelError, match="No trained model called 'a-seed0'.*b-seed1, gpt-ins"):
        remove_trained("a-seed0")


def test_alias_taken_unless_replace() -> None:
    register_trained(lora("x"))
    with pytest.raises(AliasTakenError, match="already registered.*em models remove x"):
        register_trained(lora("x", seed=5))
    register_trained(lora("x", seed=5), replace=True)
    assert get_trained("x").seed == 5  # type: ignore[union-attr]


@pytest.mark.parametrize("alias", ["", "a/b", "a,b", "a b", "smollm2-135m"])
def test_invalid_aliases(alias: str) -> None:
    with pytest.raises(InvalidAliasError):
        register_trained(lora(alias))
    assert not store_path().exists()


def test_kind_needs_its_reference() -> None:
    with pytest.raises(TrainedModelError, match="needs an adapter_path"):
        register_trained(TrainedModel(alias="a", kind="lora", base_model="smollm2-135m"))
    with pytest.raises(TrainedModelError, match="needs an openai_model"):
        register_trained(TrainedModel(alias="a", kind="openai", base_model="gpt-4o"))


def test_credentials_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SecretInConfigError, match="api_key"):
        register_trained(lora("a").model_copy(update={"config": {"api_key": "sk-anything"}}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-123")
    with pytest.raises(SecretInConfigError, match="contains an API key"):
        register_trained(lora("a").model_copy(update={"config": {"note": "key sk-test-SECRET-123"}}))
    # ordinary keys that merely mention tokens are fine
    register_trained(lora("a").model_copy(update={"config": {"max_seq_length": 2048, "pad_token": "<pad>"}}))
    assert "sk-test-SECRET-123" not in store_path().read_text()


def test_corrupt_store_is_one_clear_error() -> None:
    store_path().parent.mkdir(parents=True, exist_ok=True)
    store_path().write_text("{not json")
    with pytest.raises(CorruptStoreError, match=f"{store_path()} is not valid.*Fix or delete"):
        list_trained()


def _register_many(cache: str, worker: int) -> None:
    import os

    os.environ["EM_CACHE_DIR"] = cache
    for i in range(10):
        trained.register_trained(lora(f"w{worker}-{i}"))


def test_concurrent_writers_lose_nothing(own_cache: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_register_many, args=(str(own_cache), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(list_trained()) == 30
    assert not list(own_cache.glob(".trained_models.json.*.tmp"))
