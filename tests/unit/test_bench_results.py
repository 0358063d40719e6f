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


def _new_rows() -> list[dict[str, Any]]:
    """Rows carrying the 95 % intervals, the paired accuracy difference and per-family accuracy."""
    fam = {"gsm": {"accuracy": 0.75, "accuracy_lo": 0.6, "accuracy_hi": 0.86, "n": 40}}
    ref = _row("fam:q8_0", "fam:q8_0", accuracy=0.836, accuracy_lo=0.73, accuracy_hi=0.91, tg_tps_lo=78.0,
               tg_tps_hi=82.0, per_lo=1.0, per_hi=1.0, accuracy_by_family=fam, family="fam")  # fmt: skip
    cand = _row("fam:q2_k", "fam:q8_0", tg_tps=95.0, tg_tps_lo=93.0, tg_tps_hi=97.0, kld=0.061, kld_lo=0.057,
                kld_hi=0.065, kld_se=0.002, accuracy=0.828, accuracy_lo=0.72, accuracy_hi=0.90,
                accuracy_diff=-0.008, accuracy_diff_lo=-0.029, accuracy_diff_hi=0.013, accuracy_diff_p=0.62,
                accuracy_diff_significant=False, per=1.09, per_lo=1.02, per_hi=1.16, accuracy_by_family=fam,
                family="fam", peak_rss_mb=200.0)  # fmt: skip
    worse = {**cand, "id": "fam:[bold]q1[/bold]", "accuracy_diff": -0.1, "accuracy_diff_lo": -0.15,
             "accuracy_diff_hi": -0.05, "accuracy_diff_significant": True, "per": 1.3, "accuracy": 0.73,
             "tg_tps": 90.0, "tg_tps_lo": 88.0, "tg_tps_hi": 92.0, "top1_agreement": 0.4}  # fmt: skip
    return [ref, cand, worse]


def _render(table: Any) -> str:
    from rich.console import Console

    console = Console(width=250, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_cells_show_intervals_and_the_accuracy_difference() -> None:
    rows = _new_rows()
    cols = {c.key: c for c in report.LLM_COLUMNS}
    assert cols["accuracy"].fmt(rows[1]) == "82.8% ± 9.0"
    assert cols["accuracy_diff"].fmt(rows[1]) == "−0.8 ± 2.1"
    assert cols["accuracy_diff"].fmt(rows[2]) == "−10.0 ± 5.0 *"
    assert cols["accuracy_diff"].fmt(rows[0]) == "–"  # the reference has no difference to itself
    assert cols["kld"].fmt(rows[1]) == "0.0610 ± 0.0040"
    assert cols["per"].fmt(rows[1]) == "1.090 [1.020–1.160]"
    assert cols["per"].fmt(rows[0]) == "1.000"  # [1, 1]: no brackets
    assert cols["tg_tps"].fmt(rows[1]) == "95.0 ± 2.0"  # the interval's half-width, not the sd
    assert cols["tg_tps"].fmt(_row("fam:q8_0", "fam:q8_0")) == "80.0 ± 2.0"  # old row: the sd, as before
    assert cols["kld"].fmt({**rows[1], "kld_lo": "junk"}) == "0.0610"  # a damaged interval is left out


def test_old_and_new_runs_render_everywhere() -> None:
    """A run stored before the intervals (no new keys at all) renders in every table, export and plot."""
    old = results.get(results.save(_run()))
    new = results.get(results.save(Run(kind="llm", rows=_new_rows(), fingerprint=old.fingerprint, threads=2)))
    for run in (old, new):
        text = _render(report.rich_table(run))
        assert "fam:q2_k" in text and "Δacc" in text
        for fmt in ("csv", "md", "json"):
            assert "fam:q2_k" in report.export(run, fmt)
        assert "q2_k" in plot.terminal(run, width=80, height=20, color=False)
        ET.fromstring(plot.svg(run))
        _render(report.compare_table([run]))
    assert "* = significant" in _render(report.rich_table(new))
    assert "[bold]q1[/bold]" in _render(report.rich_table(new))  # an id is text, never markup


def test_exports_carry_intervals_family_accuracy_and_the_verdict() -> None:
    from assistant.bench import verdict

    run = results.get(results.save(Run(kind="llm", rows=_new_rows(), fingerprint=fingerprint.collect(2, 512))))
    rows = list(csv.DictReader(io.StringIO(report.export(run, "csv"))))
    assert rows[1]["kld_lo"] == "0.057" and rows[1]["accuracy_diff_significant"] == "False"
    assert rows[1]["per_hi"] == "1.16" and rows[1]["family"] == "fam"
    decided = verdict.verdict(run.rows)
    assert decided["id"] == "fam:q2_k" and "fam:[bold]q1[/bold]" in decided["rejected"]
    md = report.export(run, "md", decided)
    assert "| accuracy by family | gsm |" in md and "| fam:q2_k | 75.0% ± 13.0 |" in md
    assert "**verdict: fam:q2\\_k: KLD 0.061 ± 0.004" in md
    assert "- fam:\\[bold\\]q1\\[/bold\\]: accuracy significantly worse" in md
    data = json.loads(report.export(run, "json", decided))
    assert data["verdict"] == decided and data["results"][1]["accuracy_by_family"]["gsm"]["n"] == 40
    line = report.render_verdict(decided)
    assert line.plain.startswith("verdict: fam:q2_k: KLD 0.061 ± 0.004, accuracy −0.8 ± 2.1 pts (not significant)")
    assert line.spans == []
    assert report.render_verdict(verdict.verdict([])).plain == "verdict: none (no results)"


def test_plot_marks_the_front_and_the_verdict() -> None:
    run = results.get(results.save(Run(kind="llm", rows=_new_rows(), fingerprint=fingerprint.collect(2, 512))))
    a = plot.axes(run)
    chosen = [p.label for p in a.points if p.chosen]
    assert chosen == ["q2_k 100MB"]
    assert [p.pareto for p in a.points] == [True, True, False]  # q2_k beats the [bold] row on every axis
    assert a.points[1].x_range == (93.0, 97.0)
    assert "✓" in plot.terminal(run, width=80, height=20, color=False)
    labels = [t.text or "" for t in ET.fromstring(plot.svg(run)).iter() if t.tag.endswith("text")]
    assert any("q2_k" in label and "✓" in label for label in labels)
    assert plot.axes(run, chosen="fam:q8_0").points[0].chosen


def test_speech_runs_render_with_and_without_intervals() -> None:
    base = {"reference": "w:float32", "size_bytes": 1, "load_s": 0.2, "rtf": 0.2, "rtf_sd": 0.01, "x_realtime": 5.0,
            "wer": 0.1, "latency_ms": 900.0, "peak_rss_mb": 500.0, "per": 1.0}  # fmt: skip
    old = {"id": "w:float32", "is_reference": True, **base}
    new = {**base, "id": "w:int8", "wer_lo": 0.07, "wer_hi": 0.13, "rtf_lo": 0.18, "rtf_hi": 0.22, "per_lo": 0.9,
           "per_hi": 1.1}  # fmt: skip
    run = results.get(results.save(Run(kind="whisper", rows=[old, new], fingerprint=fingerprint.collect(2, 512))))
    cols = {c.key: c for c in report.SPEECH_COLUMNS}
    assert cols["wer"].fmt(new) == "10.0% ± 3.0" and cols["rtf"].fmt(new) == "0.200 ± 0.020"
    assert cols["rtf"].fmt(old) == "0.200 ± 0.010"
    assert "Δacc" not in _render(report.rich_table(run))
    assert "wer_lo" in report.export(run, "csv").splitlines()[0]
    ET.fromstring(plot.svg(run))
    assert plot.axes(run).points[1].y_range == pytest.approx((87.0, 93.0))


def test_a_quality_note_is_shown_with_the_table() -> None:
    rows = _new_rows()[:2]
    rows[1].update(kld=None, ppl_ratio=None, top1_agreement=None, quality_note="reference has another vocabulary")
    run = Run(kind="llm", rows=rows, fingerprint={})
    assert "fam:q2_k: reference has another vocabulary" in _render(report.rich_table(run))
    assert "- fam:q2\\_k: reference has another vocabulary" in report.markdown(run)


def test_the_lookup_column_appears_with_the_speculative_figures() -> None:
    from assistant.bench import report
    from assistant.bench.results import Run

    row = {"id": "m:q4_1", "spec_ratio": 1.234, "spec_ratio_lo": 1.1, "spec_ratio_hi": 1.4, "spec_acceptance": 0.7}
    with_spec = Run(kind="llm", rows=[row], fingerprint={})
    assert report.SPEC_COLUMN in report.columns(with_spec) and "spec_acceptance" in report.csv_keys(with_spec)
    assert report.SPEC_COLUMN.fmt(row) == "1.23× [1.10–1.40] 70%"
    plain = Run(kind="llm", rows=[{"id": "m:q4_1"}], fingerprint={})
    assert report.columns(plain) == report.LLM_COLUMNS and report.csv_keys(plain) == report.LLM_CSV_KEYS
