"""Where a benchmark ran: hardware, OS, library versions and run settings, stored with every run.

Numbers from different machines (or thread counts, or llama.cpp builds) are not comparable; the
fingerprint makes that visible in ``bench compare`` and ``bench history`` instead of leaving it to memory.
Nothing here imports llama_cpp or ctranslate2: versions come from package metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# CPU features that change which llama.cpp / CTranslate2 kernels run (x86 flags, Arm features).
INTERESTING_FLAGS = (
    "sse3", "ssse3", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp", "sve", "sve2",
    "i8mm", "bf16", "dotprod",
)  # fmt: skip
# Keys that identify the machine and software; run settings (threads, context) are compared separately.
MACHINE_KEYS = (
    "cpu",
    "cpu_flags",
    "physical_cores",
    "logical_cores",
    "ram_gb",
    "os",
    "machine",
    "llama_cpp",
    "ctranslate2",
)


def _cpuinfo() -> tuple[str, list[str]]:
    model = ""
    flags: list[str] = []
    path = Path("/proc/cpuinfo")
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = value.split()
    if not model and sys.platform == "darwin":
        model = _sysctl("machdep.cpu.brand_string")
        flags = [f.lower() for f in _sysctl("machdep.cpu.features").split()]
        if platform.machine() == "arm64":
            flags.append("neon")
    return model or platform.processor() or platform.machine(), flags


def _sysctl(name: str) -> str:
    import subprocess

    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect(threads: int | None = None, context: int | None = None) -> dict[str, Any]:
    """The fingerprint of this machine, plus the run's thread count and context size."""
    import psutil

    model, flags = _cpuinfo()
    wanted = [f for f in INTERESTING_FLAGS if f in set(flags)]
    return {
        "cpu": model,
        "cpu_flags": wanted,
        "physical_cores": psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        "logical_cores": psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": platform.platform(terse=True),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "llama_cpp": _version("llama-cpp-python"),
        "ctranslate2": _version("ctranslate2"),
        "faster_whisper": _version("faster-whisper"),
        "threads": threads,
        "context": context,
    }


def digest(fingerprint: dict[str, Any]) -> str:
    """A short hash of the machine part: equal digests mean the numbers are comparable hardware-wise."""
    machine = {k: fingerprint.get(k) for k in MACHINE_KEYS}
    return hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:12]


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable keys whose values differ, e.g. ``threads: 2 -> 4``."""
    out = []
    for key in (*MACHINE_KEYS, "python", "threads", "context"):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} -> {b.get(key)}")
    return out
