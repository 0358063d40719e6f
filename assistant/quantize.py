"""Make smaller (or larger) variants of an installed GGUF model with llama.cpp's own quantizer.

``quantize("smollm2-135m-instruct:q4_1", ["q8_0", "q2_k"])`` writes each target to a temp file inside its
store folder (``models/<family>/<tag>/``), validates it with ``gguf.read``, renames it into place and only
then registers it, with provenance (source variant, llama.cpp version, file type). Ctrl+C or any error
removes the temp file and registers nothing.

``llama_model_quantize`` runs in a child process (``bench/worker.py``): it has no abort hook, so killing
the child is the only way to stop it promptly, and its log (captured through ``llama.log_to``) is parsed for
per-tensor progress and for *fallbacks*: K-quants work on 256-wide blocks, so a tensor whose rows are not a
multiple of 256 wide (SmolLM2's 576-wide projections, for instance) is stored as another type (Q5_0, Q8_0,
...). Those are reported, because they explain why a "Q2_K" file can be barely smaller than its source.

Quantizing an already-quantized file (the starter models ship as Q4_1 / Q4_K_M) needs
``allow_requantize``: the new file can only lose information, never recover what the source's
quantization dropped, so a Q8_0 made from a Q4_1 is a bigger Q4_1, not a better model.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gguf
from .errors import AssistantError
from .llama import log_to
from .store import Installed, Store, variant_dir

# Target tag -> llama_ftype constant suffix (llama_cpp.LLAMA_FTYPE_MOSTLY_<X>). The i-quants and Q2_K_S
# are left out: llama.cpp refuses them without an importance matrix, which we do not compute.
TARGETS: dict[str, str] = {
    "f16": "F16",
    "bf16": "BF16",
    "q8_0": "Q8_0",
    "q6_k": "Q6_K",
    "q5_k_m": "Q5_K_M",
    "q5_k_s": "Q5_K_S",
    "q5_1": "Q5_1",
    "q5_0": "Q5_0",
    "q4_k_m": "Q4_K_M",
    "q4_k_s": "Q4_K_S",
    "q4_1": "Q4_1",
    "q4_0": "Q4_0",
    "iq4_nl": "IQ4_NL",
    "iq4_xs": "IQ4_XS",
    "q3_k_l": "Q3_K_L",
    "q3_k_m": "Q3_K_M",
    "q3_k_s": "Q3_K_S",
    "q2_k": "Q2_K",
}
# Types that store weights unquantized: converting from these is a first quantization, not a requantization.
FLOAT_TYPES = {"F32", "F16", "BF16"}
# Row width K-quants (and IQ4_XS) need; narrower or ragged rows fall back to a 32-wide type.
SUPER_BLOCK = 256

_PROGRESS_RE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
_FALLBACK_RE = re.compile(
    r"(\S+)\s+- ncols\s+(\d+) not divisible by (\d+) \(required for type\s+(\w+)\) -> falling back to\s+(\w+)"
)
_FAILED_RE = re.compile(r"failed to quantize: (.*)")
_SIZE_RE = re.compile(r"(model|quant) size\s*=\s*([\d.]+) MiB")

# Free space under which a failed quantization is put down to a full disk: llama.cpp reports a failed write
# only as "basic_ios::clear: iostream error", and a write that ran out of room fills the disk to its last block.
FULL_DISK_BYTES = 1024 * 1024

Progress = Callable[[str, int, int], None]


@dataclass
class Fallback:
    """``count`` tensors asked to be ``wanted`` were stored as ``got`` (their row ``widths`` don't fit)."""

    wanted: str
    got: str
    count: int
    widths: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"wanted": self.wanted, "got": self.got, "count": self.count, "widths": self.widths}


@dataclass
class QuantResult:
    installed: Installed
    source: Installed
    source_quant: str
    target: str
    requantized: bool
    n_tensors: int
    fallbacks: list[Fallback]
    seconds: float

    @property
    def fallback_count(self) -> int:
        return sum(f.count for f in self.fallbacks)

    def fallback_note(self) -> str | None:
        """One sentence: how many tensors were kept as which type, and why."""
        if not self.fallbacks:
            return None
        by_got: Counter[str] = Counter()
        wanted, widths = set(), set()
        for f in self.fallbacks:
            by_got[f.got.upper()] += f.count
            wanted.add(f.wanted.upper())
            widths.update(f.widths)
        kept = " / ".join(f"{name} ({n})" if len(by_got) > 1 else name for name, n in by_got.most_common())
        width_text = ", ".join(str(w) for w in sorted(widths)) or "?"
        return (
            f"{self.fallback_count} of {self.n_tensors} tensors kept as {kept} because their width ({width_text})"
            f" isn't a multiple of {SUPER_BLOCK} (needed by {'/'.join(sorted(wanted))})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.installed.id,
            "path": str(self.installed.path),
            "size_bytes": self.installed.size_bytes,
            "source": self.source.id,
            "source_quant": self.source_quant,
            "ftype": TARGETS[self.target],
            "requantized": self.requantized,
            "n_tensors": self.n_tensors,
            "fallbacks": [f.to_json() for f in self.fallbacks],
            "fallback_note": self.fallback_note(),
            "seconds": round(self.seconds, 3),
        }


def parse_targets(text: str | list[str]) -> list[str]:
    """``"q8_0,Q4_K_M"`` -> ``["q8_0", "q4_k_m"]``; unknown names are an error listing the known ones."""
    items = text if isinstance(text, list) else text.split(",")
    out: list[str] = []
    for raw in items:
        tag = raw.strip().lower()
        if not tag:
            continue
        if tag not in TARGETS:
            raise AssistantError(f"unknown quantization type {raw.strip()!r}", "choose from " + ", ".join(TARGETS))
        if tag not in out:
            out.append(tag)
    if not out:
        raise AssistantError("no target type given", "e.g. --to q8_0,q4_k_m")
    return out


def requantize_note(source: Installed, source_quant: str) -> str | None:
    """What the user should know when the source is already quantized (None for F32/F16/BF16 sources)."""
    if source_quant.upper() in FLOAT_TYPES:
        return None
    return (
        f"{source.id} is already quantized ({source_quant}); requantizing it: quality is bounded by the source,"
        f" so a higher-precision target (e.g. q8_0) is a bigger {source_quant}, not a better model"
    )


def output_name(source: Installed, target: str) -> str:
    """The new file's name: the source's, with its quant label swapped (``X.Q4_1.gguf`` -> ``X.Q8_0.gguf``)."""
    stem = source.path.stem if source.path.suffix.lower() == ".gguf" else source.path.name
    tag = source.id.split(":", 1)[1]
    match = re.search(re.escape(tag), stem, flags=re.IGNORECASE)
    if match:
        label = target.upper() if match.group(0).isupper() else target
        stem = stem[: match.start()] + label + stem[match.end() :]
    else:
        stem = f"{stem}.{target.upper()}"
    return f"{stem}.gguf"


@dataclass
class Plan:
    """A validated quantization: the source, its header, and the (tag, target id) pairs to make."""

    source: Installed
    info: gguf.GGUFInfo
    targets: list[tuple[str, str]]

    @property
    def source_quant(self) -> str:
        return self.info.quant

    def note(self) -> str | None:
        return requantize_note(self.source, self.source_quant)


def plan(source_id: str, targets: list[str] | str, *, force: bool = False, store: Store | None = None) -> Plan:
    """Check everything before any work: the source is an installed, valid GGUF; every target is known, is
    not the source, and is not installed yet (unless ``force``)."""
    store = store or Store()
    source = store.require(source_id)
    if source.kind != "llm":
        raise AssistantError(f"{source.id} is a {source.kind} model", "only GGUF language models can be quantized")
    info = gguf.read(source.path)
    family = source.id.split(":", 1)[0]
    pairs: list[tuple[str, str]] = []
    for tag in parse_targets(targets):
        target_id = f"{family}:{tag}"
        if target_id == source.id:
            raise AssistantError(f"{target_id} is the source itself", "pick a different target type")
        if store.get(target_id) is not None and not force:
            raise AssistantError(f"{target_id} is already installed", "use --force to replace it")
        pairs.append((tag, target_id))
    return Plan(source, info, pairs)


def quantize(
    source_id: str,
    targets: list[str] | str,
    *,
    threads: int | None = None,
    force: bool = False,
    store: Store | None = None,
    on_start: Callable[[str], None] | None = None,
    on_progress: Progress | None = None,
) -> list[QuantResult]:
    """Quantize ``source_id`` to each of ``targets`` (tags like ``q4_k_m``); register and return the results.

    ``on_start(target_id)`` is called before each target, ``on_progress(target_id, done, total)`` per tensor.
    Targets are done one after the other; one that fails stops the rest (those finished stay installed).
    """
    from .bench import worker

    store = store or Store()
    work_plan = plan(source_id, targets, force=force, store=store)
    if threads is None:
        from . import config

        threads = config.load().threads()
    results = []
    for tag, target_id in work_plan.targets:
        if on_start is not None:
            on_start(target_id)
        results.append(
            _quantize_one(
                work_plan.source, work_plan.source_quant, tag, target_id, threads, store, worker.run, on_progress
            )
        )
    return results


def _quantize_one(
    source: Installed,
    source_quant: str,
    tag: str,
    target_id: str,
    threads: int,
    store: Store,
    run: Callable[..., dict[str, Any]],
    on_progress: Progress | None,
) -> QuantResult:
    folder = variant_dir(target_id)
    created = [p for p in (folder.parent, folder) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / output_name(source, tag)
    tmp = folder / f".{final.name}.{os.getpid()}.partial"
    requantize = source_quant.upper() not in FLOAT_TYPES
    started = time.perf_counter()
    done = False
    try:

        def progress(event: dict[str, Any]) -> None:
            if event.get("event") == "tensor" and on_progress is not None:
                on_progress(target_id, int(event["i"]), int(event["n"]))

        spec = {
            "source": str(source.path),
            "output": str(tmp),
            "ftype": TARGETS[tag],
            "threads": threads,
            "allow_requantize": requantize,
        }
        try:
            result = run("quantize", spec, progress)
        except AssistantError:
            _raise_if_disk_full(folder, tmp)
            raise
        out_info = gguf.read(tmp)  # never register a file llama.cpp could not load
        fallbacks = [Fallback(**f) for f in result.get("fallbacks", [])] or _fallbacks_from_types(out_info, tag)
        os.replace(tmp, final)
        provenance = {
            "source_variant": source.id,
            "source_quant": source_quant,
            "source_sha256": source.sha256,
            "llama_cpp_version": result.get("llama_cpp_version"),
            "ftype": TARGETS[tag],
            "ftype_id": result.get("ftype_id"),
            "requantized": requantize,
            "fallback_tensors": sum(f.count for f in fallbacks),
            "threads": threads,
        }
        final_info = gguf.read(final)
        installed = Installed(
            id=target_id,
            kind="llm",
            path=final,
            managed=True,
            size_bytes=final.stat().st_size,
            sha256=None,
            source="quantize",
            provenance=provenance,
            info=final_info.summary(),
        )
        try:
            store.add(installed)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        done = True
        return QuantResult(
            installed=installed,
            source=source,
            source_quant=source_quant,
            target=tag,
            requantized=requantize,
            n_tensors=len(out_info.tensors),
            fallbacks=fallbacks,
            seconds=time.perf_counter() - started,
        )
    finally:
        tmp.unlink(missing_ok=True)
        if not done:
            for path in reversed(created):
                try:
                    path.rmdir()
                except OSError:
                    pass


def _raise_if_disk_full(folder: Path, tmp: Path) -> None:
    """Say "no space left" (with what is free once the partial file is gone) when that is why it failed."""
    try:
        if shutil.disk_usage(folder).free >= FULL_DISK_BYTES:
            return
        tmp.unlink(missing_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    raise AssistantError(
        f"no space left on device in {folder}: free {free / (1024 * 1024):.0f} MB",
        "free some space, or pick a smaller type, and try again",
    ) from None


def _fallbacks_from_types(info: gguf.GGUFInfo, tag: str) -> list[Fallback]:
    """When the log said nothing (a future llama.cpp may word it differently): infer fallbacks from the
    output's tensor types — a 256-block type was asked for, a ragged-width tensor holds a 32-block type."""
    if "_k" not in tag and tag != "iq4_xs":
        return []
    groups: dict[str, list[int]] = {}
    for t in info.tensors:
        _, block, _ = gguf.GGML_TYPES[t.type_id]
        if t.type_name in FLOAT_TYPES or len(t.shape) < 2:
            continue
        if t.shape[0] % SUPER_BLOCK and block < SUPER_BLOCK:
            groups.setdefault(t.type_name, []).append(t.shape[0])
    wanted = TARGETS[tag].split("_")[0] + "_K" if "_k" in tag else "IQ4_XS"
    return [Fallback(wanted, got, len(ws), sorted(set(ws))) for got, ws in groups.items()]


# -- child process side ----------------------------------------------------------------------------------


class _LogParser:
    """Collects llama.cpp's log lines (they arrive in pieces) and turns them into events."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self.emit = emit
        self.buffer = ""
        self.fallbacks: dict[tuple[str, str], list[int]] = {}
        self.failure: str | None = None
        self.sizes: dict[str, float] = {}

    def feed(self, text: str) -> None:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.line(line)

    def line(self, line: str) -> None:
        if m := _PROGRESS_RE.match(line):
            self.emit({"event": "tensor", "i": int(m.group(1)), "n": int(m.group(2)), "name": m.group(3)})
        elif m := _FALLBACK_RE.search(line):
            self.fallbacks.setdefault((m.group(4), m.group(5)), []).append(int(m.group(2)))
        if m := _FAILED_RE.search(line):
            self.failure = m.group(1).strip()
        for m in _SIZE_RE.finditer(line):
            self.sizes[m.group(1)] = float(m.group(2))


def work(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Child process: run ``llama_model_quantize`` with progress parsed from its log."""
    import llama_cpp

    parser = _LogParser(emit)

    log_to(lambda level, text: parser.feed(text))
    ftype_id = int(getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{spec['ftype']}"))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_id
    params.nthread = int(spec["threads"])
    params.allow_requantize = bool(spec["allow_requantize"])
    rc = llama_cpp.llama_model_quantize(
        str(spec["source"]).encode(), str(spec["output"]).encode(), ctypes.byref(params)
    )
    parser.feed("\n")
    if rc != 0:
        reason = parser.failure or f"llama_model_quantize returned {rc}"
        raise AssistantError(f"llama.cpp could not quantize {Path(spec['source']).name}: {reason}")
    return {
        "llama_cpp_version": llama_cpp.__version__,
        "ftype_id": ftype_id,
        "fallbacks": [
            {"wanted": wanted, "got": got, "count": len(widths), "widths": sorted(set(widths))}
            for (wanted, got), widths in parser.fallbacks.items()
        ],
        "model_mib": parser.sizes.get("model"),
        "quant_mib": parser.sizes.get("quant"),
    }
