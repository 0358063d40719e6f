"""Read and validate a GGUF header without loading weights.

llama.cpp can crash on malformed input, so every file passes ``read()`` before llama.cpp sees it:
magic, version, sane tensor and metadata counts, every string and array inside the file, known tensor
types, tensor data inside the file. Only ``mmap`` and ``struct`` are used, so a 250 MB model's header
reads in tens of milliseconds and a hostile header cannot make us allocate what it claims.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AssistantError

MAGIC = b"GGUF"
# Limits far above any real model (the largest have ~2k tensors, ~60 metadata keys) but low enough to
# refuse a header that claims billions of entries.
MAX_TENSORS = 1_000_000
MAX_KV = 100_000
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32

# ggml_type -> (name, elements per block, bytes per block), from ggml.h / ggml.c type_traits.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# llama_ftype (general.file_type) -> the quant name people use.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
    18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
    32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}  # fmt: skip

# GGUF metadata value types -> struct format (None: string / array, handled apart).
_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
# Arrays longer than this keep only their length (tokenizer vocabularies have 50k-260k entries).
_KEEP_ARRAY = 256


class GGUFError(AssistantError):
    """The file is not a GGUF that is safe to hand to llama.cpp."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.type_id][0]

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        _, block, size = GGML_TYPES[self.type_id]
        return self.n_elements // block * size


@dataclass
class ArrayValue:
    """A metadata array: its element type, length, and the values when short enough to keep."""

    type_id: int
    length: int
    values: list[Any] | None = None


@dataclass
class GGUFInfo:
    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    data_size: int
    alignment: int = DEFAULT_ALIGNMENT
    warnings: list[str] = field(default_factory=list)
    vocab_digest: str = ""  # sha256 of the token list as stored: two models that share it can draft for each other

    # -- convenience accessors over the metadata -------------------------------------------------
    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        value = self.metadata.get(f"{self.architecture}.{key}", default)
        if isinstance(value, ArrayValue):
            return value.values if value.values is not None else default
        return value

    def arch_int(self, key: str, default: int = 0) -> int:
        """An integer hyper-parameter; per-layer arrays (e.g. head counts) give their maximum."""
        value = self.arch_value(key, default)
        if isinstance(value, list):
            return int(max(value)) if value else default
        return int(value) if value is not None else default

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return str(value) if value is not None else None

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def quant(self) -> str:
        """The file type from metadata, else the type holding most of the weight bytes."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        by_bytes: Counter[str] = Counter()
        for t in self.tensors:
            by_bytes[t.type_name] += t.n_bytes
        return by_bytes.most_common(1)[0][0] if by_bytes else "unknown"

    @property
    def context_length(self) -> int:
        return self.arch_int("context_length")

    @property
    def n_layers(self) -> int:
        return self.arch_int("block_count")

    @property
    def n_heads(self) -> int:
        return self.arch_int("attention.head_count")

    @property
    def n_kv_heads(self) -> int:
        return self.arch_int("attention.head_count_kv", self.n_heads)

    @property
    def embedding_length(self) -> int:
        return self.arch_int("embedding_length")

    @property
    def key_length(self) -> int:
        n_heads = self.n_heads or 1
        return self.arch_int("attention.key_length", self.embedding_length // n_heads)

    @property
    def value_length(self) -> int:
        n_heads = self.n_heads or 1
        return self.arch_int("attention.value_length", self.embedding_length // n_heads)

    @property
    def sliding_window(self) -> int:
        return self.arch_int("attention.sliding_window")

    @property
    def vocab_size(self) -> int:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        return tokens.length if isinstance(tokens, ArrayValue) else 0

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return str(value) if isinstance(value, str) and value.strip() else None

    @property
    def license(self) -> str | None:
        value = self.metadata.get("general.license")
        return str(value) if value is not None else None

    def summary(self) -> dict[str, Any]:
        """What ``models info`` shows and what the store caches."""
        return {
            "path": str(self.path),
            "format": f"GGUF v{self.version}",
            "architecture": self.architecture,
            "name": self.name,
            "parameters": self.parameter_count,
            "quant": self.quant,
            "context_length": self.context_length,
            "layers": self.n_layers,
            "heads": self.n_heads,
            "kv_heads": self.n_kv_heads,
            "embedding_length": self.embedding_length,
            "key_length": self.key_length,
            "value_length": self.value_length,
            "sliding_window": self.sliding_window,
            "vocab_size": self.vocab_size,
            "vocab_digest": self.vocab_digest,
            "chat_template": self.chat_template is not None,
            "license": self.license,
            "tensors": len(self.tensors),
            "file_size": self.file_size,
            "data_size": self.data_size,
        }


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)
        self.path = path

    def fail(self, what: str) -> GGUFError:
        return GGUFError(f"{self.path}: not a valid GGUF file: {what}", "re-download or re-export the model")

    def take(self, n: int) -> int:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated at byte {self.pos} (file is {self.size} bytes)")
        start = self.pos
        self.pos += n
        return start

    def scalar(self, fmt: str) -> Any:
        start = self.take(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, start)[0]

    def string(self, keep: bool = True) -> str:
        length = self.scalar("<Q")
        if length > self.size - self.pos:
            raise self.fail(f"a string at byte {self.pos - 8} claims {length} bytes, past the end of the file")
        start = self.take(length)
        if not keep:
            return ""
        try:
            return bytes(self.buf[start : start + length]).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(self.buf[start : start + length]).decode("utf-8", "replace")

    def value(self, type_id: int, keep: bool = True) -> Any:
        if type_id in _SCALARS:
            return self.scalar(_SCALARS[type_id])
        if type_id == _STRING:
            return self.string(keep)
        if type_id == _ARRAY:
            elem_type = self.scalar("<I")
            length = self.scalar("<Q")
            if elem_type == _ARRAY:
                raise self.fail("nested arrays are not supported")
            if elem_type in _SCALARS:
                width = struct.calcsize(_SCALARS[elem_type])
                if length > (self.size - self.pos) // width:
                    raise self.fail(f"an array claims {length} elements, past the end of the file")
                start = self.take(length * width)
                values = None
                if keep and length <= _KEEP_ARRAY:
                    values = list(struct.unpack_from(f"<{length}{_SCALARS[elem_type][1:]}", self.buf, start))
                return ArrayValue(elem_type, length, values)
            if elem_type == _STRING:
                # each string is at least its 8-byte length
                if length > (self.size - self.pos) // 8:
                    raise self.fail(f"an array claims {length} strings, past the end of the file")
                small = keep and length <= _KEEP_ARRAY
                items = [self.string(small) for _ in range(length)]
                return ArrayValue(elem_type, length, items if small else None)
            raise self.fail(f"unknown array element type {elem_type}")
        raise self.fail(f"unknown metadata value type {type_id}")


def read(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse and validate ``path``'s header; raise ``GGUFError`` (one line, what to do) if unsafe."""
    p = Path(path)
    if not p.exists():
        raise AssistantError(f"{p}: no such file", "check the path")
    if p.is_dir():
        raise GGUFError(f"{p}: is a directory, not a GGUF file", "give the path of a .gguf file")
    try:
        size = p.stat().st_size
        if size == 0:
            raise GGUFError(f"{p}: empty file, not a GGUF model", "re-download or re-export the model")
        with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, p, size)
    except PermissionError:
        raise AssistantError(f"{p}: permission denied", "check the file's permissions") from None
    except OSError as exc:
        raise AssistantError(f"{p}: cannot read: {exc.strerror or exc}") from None


def _parse(buf: mmap.mmap, path: Path, size: int) -> GGUFInfo:
    """The header in file order: preamble, metadata, tensor infos, then where the tensor data lies."""
    r = _Reader(buf, path)
    version, n_tensors, n_kv = _preamble(r, buf, size)
    metadata, vocab_digest = _metadata(r, n_kv)
    tensors = [_tensor(r) for _ in range(n_tensors)]
    alignment, data_offset, data_size = _data_layout(r, metadata, tensors, size)
    info = GGUFInfo(
        path, version, size, metadata, tensors, data_offset, data_size, alignment, vocab_digest=vocab_digest
    )
    if "general.architecture" not in metadata:
        raise r.fail("no general.architecture in the metadata")
    return info


def _preamble(r: _Reader, buf: mmap.mmap, size: int) -> tuple[int, int, int]:
    """Magic, version and the two counts: (version, tensors, metadata keys)."""
    if size < 24:
        raise r.fail(f"only {size} bytes, smaller than a GGUF header")
    magic = bytes(buf[:4])
    if magic != MAGIC:
        raise r.fail(f"bad magic {magic!r} (expected b'GGUF')")
    r.pos = 4
    version = r.scalar("<I")
    if version not in (2, 3):
        if version in (1,):
            raise r.fail("GGUF v1 is obsolete; convert the model again with a current llama.cpp")
        raise r.fail(f"unsupported version {version} (big-endian or corrupt?)")
    n_tensors = r.scalar("<Q")
    n_kv = r.scalar("<Q")
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise r.fail(f"implausible counts ({n_tensors} tensors, {n_kv} metadata keys)")
    if n_tensors == 0:
        raise r.fail("no tensors")
    return version, n_tensors, n_kv


def _metadata(r: _Reader, n_kv: int) -> tuple[dict[str, Any], str]:
    """The metadata, and the sha256 of the token list's bytes (the vocabulary's identity, "" without one)."""
    metadata: dict[str, Any] = {}
    digest = ""
    for _ in range(n_kv):
        key = r.string()
        type_id = r.scalar("<I")
        if key in metadata:
            raise r.fail(f"duplicate metadata key {key!r}")
        start = r.pos
        metadata[key] = r.value(type_id, keep=True)
        if key == "tokenizer.ggml.tokens":
            digest = hashlib.sha256(r.buf[start : r.pos]).hexdigest()[:16]
    return metadata, digest


def _tensor(r: _Reader) -> TensorInfo:
    """One tensor info: name, shape, type and offset, each checked before the next is read."""
    name = r.string()
    n_dims = r.scalar("<I")
    if not 1 <= n_dims <= MAX_DIMS:
        raise r.fail(f"tensor {name!r} has {n_dims} dimensions")
    shape = tuple(r.scalar("<Q") for _ in range(n_dims))
    if any(d == 0 or d > 2**40 for d in shape):
        raise r.fail(f"tensor {name!r} has an implausible shape {shape}")
    type_id = r.scalar("<I")
    if type_id not in GGML_TYPES:
        raise r.fail(f"tensor {name!r} has unknown type {type_id} (a newer llama.cpp format?)")
    offset = r.scalar("<Q")
    tensor = TensorInfo(name, shape, type_id, offset)
    if shape[0] % GGML_TYPES[type_id][1]:
        raise r.fail(f"tensor {name!r}: row of {shape[0]} is not a whole number of {tensor.type_name} blocks")
    return tensor


def _data_layout(r: _Reader, metadata: dict[str, Any], tensors: list[TensorInfo], size: int) -> tuple[int, int, int]:
    """(alignment, data offset, data size), refusing misaligned tensors and data past the end of the file."""
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise r.fail(f"general.alignment {alignment!r} is not a power of two")
    data_offset = (r.pos + alignment - 1) // alignment * alignment
    data_size = 0
    for t in tensors:
        if t.offset % alignment:
            raise r.fail(f"tensor {t.name!r} is not aligned to {alignment} bytes")
        data_size = max(data_size, t.offset + t.n_bytes)
    if data_offset + data_size > size:
        missing = data_offset + data_size - size
        raise r.fail(
            f"truncated: tensor data needs {data_offset + data_size} bytes, file has {size} ({missing} missing)"
        )
    return alignment, data_offset, data_size
