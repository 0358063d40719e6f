"""GGUF header reading and the bad-input gate in front of llama.cpp."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from assistant import gguf
from assistant.errors import AssistantError

from conftest import GEMMA, SMOL


@pytest.fixture(scope="module")
def smol(starter_files: dict[str, Path]) -> Path:
    return starter_files[SMOL]


@pytest.fixture(scope="module")
def gemma(starter_files: dict[str, Path]) -> Path:
    return starter_files[GEMMA]


def test_reads_smollm2_header(smol: Path) -> None:
    info = gguf.read(smol)
    s = info.summary()
    assert s["architecture"] == "llama"
    assert s["quant"] == "Q4_1"
    assert s["layers"] == 30 and s["heads"] == 9 and s["kv_heads"] == 3
    assert s["context_length"] == 8192
    assert s["chat_template"] is True
    assert s["license"] == "apache-2.0"
    assert 134_000_000 < s["parameters"] < 136_000_000
    # tensor data ends exactly at the end of the file: the type-size table is right for every tensor
    assert info.data_offset + info.data_size == info.file_size == 98_362_432


def test_reads_gemma_base_header(gemma: Path) -> None:
    info = gguf.read(gemma)
    assert info.architecture == "gemma3"
    assert info.quant == "Q4_K_M"
    assert info.chat_template is None  # a base model
    assert info.vocab_size == 262_144
    assert info.data_offset + info.data_size == info.file_size


def _header(version: int = 3, n_tensors: int = 1, n_kv: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (os.urandom(4096), "bad magic"),
        (b"GGUF", "smaller than a GGUF header"),
        (_header(version=99) + b"\0" * 64, "unsupported version"),
        (_header(n_tensors=2**40) + b"\0" * 64, "implausible counts"),
        (_header(n_tensors=0) + b"\0" * 64, "no tensors"),
        # one metadata key whose string claims more bytes than the file has
        (_header(n_kv=1) + struct.pack("<Q", 2**50) + b"abc", "past the end of the file"),
        # an array claiming billions of elements
        (_header(n_kv=1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 4, 2**40), "past the end"),
    ],
)
def test_refuses_malformed_headers(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(AssistantError, match=message) as err:
        gguf.read(path)
    assert "\n" not in str(err.value)


def test_refuses_truncated_real_model(smol: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.gguf"
    with open(smol, "rb") as fh:
        path.write_bytes(fh.read(1 << 20))
    with pytest.raises(gguf.GGUFError, match="truncated"):
        gguf.read(path)


def test_refuses_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="no such file"):
        gguf.read(tmp_path / "nope.gguf")
    with pytest.raises(AssistantError, match="is a directory"):
        gguf.read(tmp_path)


def test_type_table_matches_llama_cpp() -> None:
    """Our ggml type and file-type tables agree with the constants llama-cpp-python exports."""
    import llama_cpp

    for type_id, (name, _, _) in gguf.GGML_TYPES.items():
        constant = getattr(llama_cpp, f"GGML_TYPE_{name}", None)
        if constant is not None:
            assert constant == type_id, name
    for ftype, name in gguf.FILE_TYPES.items():
        constant = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}", None)
        if constant is not None:
            assert constant == ftype, name
    assert llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M == 15
