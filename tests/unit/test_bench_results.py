"""Stored runs (SQLite), their exports and plots, and the machine fingerprint. Rows here are stored results,
not model outputs: no model is loaded."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from assistant.bench import fingerprint, plot, report, results
from assistant.bench.results import Run
from assistant.errors import AssistantError


def _row(model_id: str, ref: str, **extra: Any) -> dict[str, Any]:
    base = {
        "id": model_id, "reference": ref, "is_reference": model_id == ref, "quant": model_id.split(":")[1].upper(),
        "size_bytes": 100_000_000, "bpw": 5.0, "load_s": 0.1, "load_s_sd": 0.01, "pp_tps": 900.0, "pp_tps_sd": 10.0,
        "tg_tps": 80.0, "tg_tps_sd": 2.0, "ttft_ms": 60.0, "ttft_ms_sd": 1.0, "peak_rss_mb": 250.0,
        "fit_estimate_mb": 260.0, "fit_error_pct": 4.0, "ppl": 20.0, "ppl_ratio": 1.0, "kld": 0.0,
        "top1_agreement": 1.0, "accuracy": 0.8, "per": 1.0,
    }  # fmt: skip
    return {**base, **extra}


def _run(**extra: Any) -> Run:
    rows = [
        _row("fam:q8_0", "fam:q8_0", size_bytes=145_000_000),
        _row("fam:q2_k", "fam:q8_0", size_bytes=88_000_000, tg_tps=95.0, ppl_ratio=1.14, kld=0.5,
             top1_agreement=0.6, per=1.2),
    ]  # fmt: skip
    return Run(kind="llm", rows=rows, fingerprint=fingerprint.collect(2, 4096), quick=True, threads=2, context=4096,
               wall_s=12.5, **extra)  # fmt: skip


def test_save_get_history_resolve_delete() -> None:
    first = results.save(_run())
    second = results.save(_run())
    assert second > first
    loaded = results.get(first)
    assert loaded.model_ids == ["fam:q8_0", "fam:q2_k"]
    assert loaded.rows[1]["kld"] == 0.5 and loaded.quick and loaded.context == 4096
    assert loaded.digest == fingerprint.digest(loaded.fingerprint)
    assert [r.id for r in results.history()] == [second, first]
    assert results.resolve("last") == second
    assert results.resolve("-2") == first
    assert results.resolve(str(first)) == first
    with pytest.raises(AssistantError, match="invalid run"):
        results.resolve("yesterday")
    results.delete(second)
    assert [r.id for r in results.history()] == [first]
    with pytest.raises(AssistantError, match=f"no benchmark run {second}"):
        results.get(second)
    with pytest.raises(AssistantError):
        results.delete(second)


def test_no_runs_yet_is_a_clear_error() -> None:
    with pytest.raises(AssistantError, match="no benchmark runs yet"):
        results.resolve("last")


def test_a_run_is_written_in_one_transaction() -> None:
    broken = _run()
    broken.rows.append({"no id": True})  # fails on the third row, after the run row and two result rows
    with pytest.raises(KeyError):
        results.save(broken)
    assert results.history() == []


def test_exports() -> None:
    run = results.get(results.save(_run()))
    rows = list(csv.DictReader(io.StringIO(report.export(run, "csv"))))
    assert [r["id"] for r in rows] == ["fam:q8_0", "fam:q2_k"]
    assert rows[1]["ppl_ratio"] == "1.14" and rows[1]["run_id"] == str(run.id)
    md = report.export(run, "md")
    assert md.splitlines()[0].startswith("| model | size |")
    assert "| fam:q8_0 * |" in md and "1.140" in md and "60.0%" in md
    data = json.loads(report.export(run, "json"))
    assert data["run_id"] == run.id and data["fingerprint_digest"] == run.digest


def test_terminal_plot_and_svg() -> None:
    run = results.get(results.save(_run()))
    text = plot.terminal(run, width=80, height=20, color=False)
    assert "q2_k 88MB" in text and "q8_0 145MB" in text and "tg128 tok/s" in text
    assert "\x1b[" not in text
    root = ET.fromstring(plot.svg(run))
    assert root.tag.endswith("svg")
    labels = [t.text or "" for t in root.iter() if t.tag.endswith("text")]
    assert any("q2_k" in label for label in labels) and any("(reference)" in label for label in labels)


def test_png_plot(tmp_path: Path) -> None:
    """PNG on request, through matplotlib (the 'plot' extra, installed with 'dev')."""
    run = results.get(results.save(_run()))
    out = tmp_path / "plot.png"
    plot.png(run, out)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_compare_lists_fingerprint_differences() -> None:
    a = results.get(results.save(_run()))
    other = _run()
    other.threads = 1
    other.fingerprint = {**other.fingerprint, "threads": 1, "llama_cpp": "9.9.9"}
    b = results.get(results.save(other))
    diff = fingerprint.differences(a.fingerprint, b.fingerprint)
    assert "threads: 2 -> 1" in diff and any(d.startswith("llama_cpp:") for d in diff)
    assert fingerprint.digest(a.fingerprint) != fingerprint.digest(b.fingerprint)  # a different build
    rows = report.compare_rows([a, b])
    assert [(r["id"], r["run_id"]) for r in rows] == [
        ("fam:q2_k", a.id), ("fam:q2_k", b.id), ("fam:q8_0", a.id), ("fam:q8_0", b.id)
    ]  # fmt: skip


def test_fingerprint_describes_this_machine() -> None:
    fp = fingerprint.collect(threads=3, context=2048)
    assert fp["cpu"] and fp["physical_cores"] >= 1 and fp["ram_gb"] > 0
    assert fp["threads"] == 3 and fp["context"] == 2048
    assert fp["llama_cpp"] and fp["os"]
    # run settings are not part of the machine digest
    assert fingerprint.digest(fp) == fingerprint.digest({**fp, "threads": 1, "context": 512})


def test_a_family_name_means_all_its_installed_variants(tmp_path: Any) -> None:
    from assistant.bench.runner import expand_families as _expand_families
    from assistant.store import Installed, Store

    store = Store()
    for model_id in ("fam:q8_0", "fam:q2_k", "other:q4_0"):
        store.add(Installed(id=model_id, kind="llm", path=tmp_path / model_id, managed=False, size_bytes=1,
                            sha256=None, source="import"))  # fmt: skip
    assert _expand_families(("fam",), store) == ("fam:q2_k", "fam:q8_0")
    assert _expand_families(("other:q4_0", "fam:q8_0", "fam"), store) == ("other:q4_0", "fam:q8_0", "fam:q2_k")
    assert _expand_families(("unknown",), store) == ("unknown",)  # left for require() to report
