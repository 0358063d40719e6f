"""The catalog: shipped ids, validation errors that name entry and field, the user catalog merge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assistant import catalog, paths
from assistant.errors import AssistantError

from conftest import assert_one_line_error, run_cli


def test_required_ids_exist() -> None:
    cat = catalog.load()
    for model_id in ("smollm2-135m-instruct:q4_1", "gemma3-270m:q4_k_m", "whisper-tiny.en:int8"):
        variant = cat.get(model_id)
        assert variant.entry.sources
    smol = cat.get("smollm2-135m-instruct:q4_1")
    assert smol.entry.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert smol.size == 98_362_432
    gemma = cat.get("gemma3-270m:q4_k_m").entry.sources[0]
    assert isinstance(gemma, catalog.WheelSource) and len(gemma.members) == 4
    assert {v.id for v in cat.starters()} == {"smollm2-135m-instruct:q4_1", "whisper-tiny.en:int8"}


def test_family_name_alone_resolves_to_first_variant() -> None:
    assert catalog.load().get("SmolLM2-135M-Instruct").id == "smollm2-135m-instruct:q4_1"


@pytest.mark.parametrize("bad", ["../../x", "a/b:c", "x:../y", "..:q4", "UPPER:ok/..", "a:", ":b", "a:b:c"])
def test_rejects_bad_ids(bad: str) -> None:
    with pytest.raises(AssistantError, match="invalid model id"):
        catalog.validate_id(bad.lower() if bad.startswith("UPPER") else bad)


def _write_user_catalog(text: str) -> Path:
    path = paths.user_catalog_file()
    paths.ensure(path.parent)
    path.write_text(text)
    return path


def test_user_catalog_merges_over_shipped() -> None:
    _write_user_catalog(
        """
[my-model]
kind = "llm"
[my-model.variants.q8_0]
file = "my.gguf"
sources = [{ hub = "me/my-model", files = ["my.gguf"] }]
"""
    )
    cat = catalog.load()
    assert "my-model:q8_0" in cat.variants
    assert "smollm2-135m-instruct:q4_1" in cat.variants


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[x]\nkind = "robot"\n[x.variants.a]\nfile="a.gguf"\nsources=[{hub="a/b",files=["a"]}]',
            "entry [x]: field kind",
        ),
        ('[x]\nkind = "llm"\n[x.variants.a]\nfile="a.gguf"\nsources=[]', "field variants.a.sources"),
        ('[x]\nkind = "llm"\n[x.variants.a]\nfile="../a.gguf"\nsources=[{hub="a/b",files=["a"]}]', "plain file name"),
        ('[x]\nkind = "llm"\n[x.variants.a]\nfile="a.gguf"\nsha256="zz"\nsources=[{hub="a/b",files=["a"]}]', "sha256"),
        (
            '[x]\nkind = "llm"\ncolour = 3\n[x.variants.a]\nfile="a"\nsources=[{hub="a/b",files=["a"]}]',
            "colour: unknown",
        ),
        ('["../../x"]\nkind = "llm"', "invalid family id"),
        (
            '[x]\nkind = "llm"\n[x.variants.a]\nfile="a"\nsources=[{hub="a/b",files=["a"]}]\n'
            '[x.variants.a]\nfile="b"\nsources=[{hub="a/b",files=["b"]}]',
            "invalid catalog",
        ),
        ('[x]\nkind = "llm"\n[x.variants.a]\nfile="a"\nsources=[{wheel=["p==1"],members=["../../etc/x"]}]', "member"),
        ("this is = = not toml", "invalid catalog"),
    ],
)
def test_invalid_user_catalog_names_entry_and_field(text: str, expected: str) -> None:
    path = _write_user_catalog(text)
    with pytest.raises(AssistantError) as err:
        catalog.load()
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_catalog_is_a_one_line_cli_error() -> None:
    _write_user_catalog('[x]\nkind = "llm"\n[x.variants.a]\nfile="a"\nsources=[]')
    line = assert_one_line_error(run_cli("models", "list"))
    assert "entry [x]" in line


def test_dotted_family_needs_quotes_hint() -> None:
    _write_user_catalog('[tiny.en]\nkind = "whisper"\n')
    with pytest.raises(AssistantError) as err:
        catalog.load()
    assert "must be quoted" in str(err.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "qwen2.5-0.5b-instruct:q4_k_m"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct:q4_1"),
        ("Llama-3.2-1B-Instruct-f16.gguf", "llama-3.2-1b-instruct:f16"),
        ("weird name!!.gguf", "weird-name:local"),
    ],
)
def test_derive_id(name: str, expected: str) -> None:
    assert catalog.derive_id(name) == expected


def test_join_needs_a_folder_member_and_plain_parts() -> None:
    from assistant.catalog import WheelSource

    ok = WheelSource(wheel=["a==1", "b==1"], members=["b/data/"], join={"model.bin": ["a/x.part1", "b/x.part2"]})
    assert ok.join["model.bin"] == ["a/x.part1", "b/x.part2"]
    bad_sources: list[dict[str, Any]] = [
        {"members": ["a/file.bin"], "join": {"model.bin": ["a/x"]}},
        {"members": ["b/data/"], "join": {"model.bin": []}},
        {"members": ["b/data/"], "join": {"../model.bin": ["a/x"]}},
        {"members": ["b/data/"], "join": {"model.bin": ["../a/x"]}},
    ]
    for bad in bad_sources:
        with pytest.raises(ValueError):
            WheelSource(wheel=["a==1"], **bad)
