"""``models quantize``: real llama.cpp quantization of the real SmolLM2 starter (Q4_1 -> q8_0 / q2_k)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import gguf, paths
from assistant.errors import AssistantError
from assistant.quantize import _fallbacks_from_types, output_name, parse_targets, quantize
from assistant.store import Installed, Store, variant_dir

from conftest import REPO, SMOL, assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


def _partials() -> list[Path]:
    root = paths.models_dir()
    return [p for p in root.rglob("*.partial")] if root.exists() else []


def test_quantize_registers_variants_with_provenance(installed_models: dict[str, object]) -> None:
    results = quantize(SMOL, ["q8_0", "q2_k"], threads=2)
    store = Store()
    by_id = {r.installed.id: r for r in results}
    assert set(by_id) == {"smollm2-135m-instruct:q8_0", "smollm2-135m-instruct:q2_k"}
    for model_id, ftype in (("smollm2-135m-instruct:q8_0", "Q8_0"), ("smollm2-135m-instruct:q2_k", "Q2_K")):
        item = store.require(model_id)
        assert item.managed and item.source == "quantize" and item.kind == "llm"
        assert item.path.parent == variant_dir(model_id)
        assert gguf.read(item.path).quant == ftype
        assert item.info["quant"] == ftype
        assert item.size_bytes == item.path.stat().st_size
        prov = item.provenance
        assert prov["source_variant"] == SMOL
        assert prov["ftype"] == ftype
        assert prov["requantized"] is True  # the starter is already Q4_1
        assert prov["llama_cpp_version"]
    # SmolLM2's 576-wide projections can't hold 256-wide K-quant blocks: the fallback is explained.
    note = by_id["smollm2-135m-instruct:q2_k"].fallback_note()
    assert note is not None and "576" in note and "256" in note
    assert by_id["smollm2-135m-instruct:q8_0"].fallback_note() is None
    # the log-independent cross-check (used if a future llama.cpp words its warnings differently) agrees
    logged: Counter[str] = Counter()
    for f in by_id["smollm2-135m-instruct:q2_k"].fallbacks:
        logged[f.got.upper()] += f.count
    inferred = _fallbacks_from_types(gguf.read(store.require("smollm2-135m-instruct:q2_k").path), "q2_k")
    assert logged == {"Q4_0": 180}
    assert {f.got: f.count for f in inferred}["Q4_0"] == logged["Q4_0"]
    assert _fallbacks_from_types(gguf.read(store.require("smollm2-135m-instruct:q8_0").path), "q8_0") == []
    # q8_0 holds more bits than q2_k, so it is the bigger file
    assert (
        by_id["smollm2-135m-instruct:q8_0"].installed.size_bytes
        > by_id["smollm2-135m-instruct:q2_k"].installed.size_bytes
    )
    assert _partials() == []


def test_quantize_cli_json_explains_requantize(installed_models: dict[str, object]) -> None:
    result = run_cli("models", "quantize", SMOL, "--to", "q4_0", "--json")
    assert result.returncode == 0, result.stderr
    assert "already quantized" in result.stderr  # the note about quality being bounded by the source
    import json

    [row] = json.loads(result.stdout)
    assert row["id"] == "smollm2-135m-instruct:q4_0"
    assert row["requantized"] is True and row["source_quant"] == "Q4_1"
    # an existing target is refused without --force
    again = run_cli("models", "quantize", SMOL, "--to", "q4_0")
    assert "already installed" in assert_one_line_error(again)


def test_truncated_source_is_one_line_error_and_registers_nothing(
    installed_models: dict[str, object], copy_model
) -> None:
    smol = installed_models[SMOL]
    assert isinstance(smol, Installed)
    bad = copy_model(smol.path, "broken.gguf")
    with open(bad, "r+b") as fh:
        fh.truncate(bad.stat().st_size // 2)
    store = Store()
    store.add(
        Installed(id="broken:q4_1", kind="llm", path=bad, managed=False, size_bytes=bad.stat().st_size, sha256=None,
                  source="import")
    )  # fmt: skip
    result = run_cli("models", "quantize", "broken:q4_1", "--to", "q8_0")
    line = assert_one_line_error(result)
    assert "truncated" in line
    assert Store().get("broken:q8_0") is None
    assert not (paths.models_dir() / "broken").exists()


def test_interrupt_mid_quantize_leaves_nothing(installed_models: dict[str, object]) -> None:
    seen: list[int] = []

    def stop(model_id: str, done: int, total: int) -> None:
        seen.append(done)
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize(SMOL, ["q5_k_m"], threads=1, on_progress=stop)
    assert seen and max(seen) == 3
    assert Store().get("smollm2-135m-instruct:q5_k_m") is None
    assert not variant_dir("smollm2-135m-instruct:q5_k_m").exists()
    assert _partials() == []


def test_ctrl_c_on_the_cli_leaves_nothing(installed_models: dict[str, object]) -> None:
    """A real SIGINT to ``assistant models quantize`` while llama.cpp is writing the temp file."""
    target = variant_dir("smollm2-135m-instruct:q8_0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "models", "quantize", SMOL, "--to", "q8_0", "--threads", "1"],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (target.exists() and any(target.glob("*.partial"))):  # wait until the write has begun
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "quantization never started"
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert Store().get("smollm2-135m-instruct:q8_0") is None
    assert not target.exists()
    assert _partials() == []


def test_parse_targets() -> None:
    assert parse_targets("Q8_0, q4_k_m,q8_0") == ["q8_0", "q4_k_m"]
    with pytest.raises(AssistantError, match="unknown quantization type 'q9_9'"):
        parse_targets("q9_9")
    with pytest.raises(AssistantError, match="no target"):
        parse_targets(" , ")
    with pytest.raises(AssistantError):
        parse_targets("iq2_xxs")  # needs an importance matrix: not offered


def test_output_name_swaps_the_quant_label(tmp_path: Path) -> None:
    def item(model_id: str, name: str) -> Installed:
        return Installed(id=model_id, kind="llm", path=tmp_path / name, managed=True, size_bytes=0, sha256=None,
                         source="x")  # fmt: skip

    assert output_name(item(SMOL, "SmolLM2-135M-Instruct.Q4_1.gguf"), "q8_0") == "SmolLM2-135M-Instruct.Q8_0.gguf"
    assert output_name(item("gemma3-270m:q4_k_m", "gemma-3-270m-q4_k_m.gguf"), "q2_k") == "gemma-3-270m-q2_k.gguf"
    assert output_name(item("mine:v1", "model.gguf"), "q4_0") == "model.Q4_0.gguf"


def test_whisper_source_is_refused(installed_models: dict[str, object]) -> None:
    with pytest.raises(AssistantError, match="only GGUF language models"):
        quantize("whisper-tiny.en:int8", ["q8_0"])


@pytest.fixture(autouse=True)
def _no_leftover_workers(assistant_home: Path) -> Iterator[None]:
    """Quantization runs in child processes (in their own session): none may outlive a test."""
    yield
    import psutil

    left = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "_worker" in cmdline and str(assistant_home) in cmdline:
            left.append(cmdline)
    assert left == []
