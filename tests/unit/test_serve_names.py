"""``ModelPool.resolve``: a request naming a model that is loaded skips the model store (a lookup costs the event
loop about 2 ms, which every running stream waits out); any other name, and every name once its model is
unloaded, is looked up again, so a model removed meanwhile is a 404 as before."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from assistant.config import Settings
from assistant.server import pool as pool_module
from assistant.server.errors import APIError
from assistant.server.pool import MAX_NAMES, ModelPool


def _pool(monkeypatch: pytest.MonkeyPatch, allowed: list[str] | None = None) -> tuple[ModelPool, list[str]]:
    looked_up: list[str] = []
    items = {"smol": "smollm2-135m-instruct:q4_1", "smollm2-135m-instruct:q4_1": "smollm2-135m-instruct:q4_1"}

    def lookup(model: str) -> Any:
        looked_up.append(model)
        if model not in items and not model.startswith("smol-"):
            raise APIError(404, f"model '{model}' is not installed", code="model_not_found")
        return SimpleNamespace(id=items.get(model, "smollm2-135m-instruct:q4_1"), kind="llm")

    monkeypatch.setattr(ModelPool, "_lookup", staticmethod(lookup))
    return ModelPool(Settings(), allowed), looked_up


def test_a_loaded_models_name_is_not_looked_up_again(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, looked_up = _pool(monkeypatch)
    item = pool.resolve("smol")
    pool.chat[item.id] = object()  # type: ignore[assignment]
    assert pool.resolve("smol") is item
    assert pool.resolve("smol") is item
    assert looked_up == ["smol"]
    assert pool.resolve("smollm2-135m-instruct:q4_1").id == item.id  # another name: looked up once
    assert looked_up == ["smol", "smollm2-135m-instruct:q4_1"]


def test_a_name_is_looked_up_again_once_its_model_is_unloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, looked_up = _pool(monkeypatch)
    item = pool.resolve("smol")
    assert pool.resolve("smol").id == item.id  # not loaded yet: both looked up
    pool.chat[item.id] = object()  # type: ignore[assignment]
    pool.resolve("smol")
    pool.chat.clear()
    pool.resolve("smol")
    assert looked_up == ["smol", "smol", "smol"]


def test_unknown_and_not_served_names_still_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = _pool(monkeypatch, allowed=["other:q8_0"])
    with pytest.raises(APIError) as unknown:
        pool.resolve("nope")
    assert unknown.value.status == 404
    item = pool_module.ModelPool._lookup("smol")
    pool.chat[item.id] = object()  # type: ignore[assignment]
    with pytest.raises(APIError, match="not served here"):  # --models applies to a remembered name too
        pool.resolve("smol")
    with pytest.raises(APIError, match="not served here"):
        pool.resolve("smol")


def test_the_names_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = _pool(monkeypatch)
    pool.chat["smollm2-135m-instruct:q4_1"] = object()  # type: ignore[assignment]
    for n in range(3 * MAX_NAMES):  # many spellings of one loaded model
        pool.resolve(f"smol-{n}")
    assert 0 < len(pool._names) <= MAX_NAMES
