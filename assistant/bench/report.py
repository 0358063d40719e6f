"""Turn a stored run into tables: Rich for the terminal, CSV / JSON / Markdown for export.

Columns are declared once (``LLM_COLUMNS``, ``SPEECH_COLUMNS``) and every format is generated from them,
so the terminal, the export and the README table can't disagree.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..untrusted import clean, plain
from . import spec
from .results import Run
from .stats import half_width, number

Row = dict[str, Any]


def _num(key: str, digits: int = 1, sd: str | None = None, pct: bool = False) -> Callable[[Row], str]:
    """``value ± h``: h is the half-width of the 95 % interval (``key_lo``/``key_hi``) when the row has one,
    else the spread ``sd`` (rows stored before the intervals existed); no ± when it is 0."""

    def fmt(row: Row) -> str:
        value = number(row.get(key))
        if value is None:
            return "–"
        scale = 100 if pct else 1
        text = f"{value * scale:.{digits}f}" + ("%" if pct else "")
        half = half_width(row, key)
        if half is None and sd:
            half = number(row.get(sd))
        if half:
            text += f" ± {half * scale:.{digits}f}"
        return text

    return fmt


def _minus(text: str) -> str:
    return text.replace("-", "−")


def _diff(row: Row) -> str:
    """The accuracy change against the reference in points, ``± h`` (95 %), ``*`` when significant."""
    diff = number(row.get("accuracy_diff"))
    if diff is None:
        return "–"
    text = _minus(f"{diff * 100:+.1f}")
    half = half_width(row, "accuracy_diff")
    if half:
        text += f" ± {half * 100:.1f}"
    return text + (" *" if row.get("accuracy_diff_significant") is True else "")


def _per(row: Row) -> str:
    """PER with its 95 % interval in brackets (no brackets when it has no width, as for the reference)."""
    value = number(row.get("per"))
    if value is None:
        return "–"
    lo, hi = number(row.get("per_lo")), number(row.get("per_hi"))
    if lo is None or hi is None or lo == hi:
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}–{hi:.3f}]"


def _lookup(row: Row) -> str:
    """The speculative column: lookup's speed-up on grounded prompts [95 %], and the share of drafts taken."""
    ratio = number(row.get("spec_ratio"))
    if ratio is None:
        return "–"
    lo, hi, taken = (
        number(row.get("spec_ratio_lo")),
        number(row.get("spec_ratio_hi")),
        number(row.get("spec_acceptance")),
    )
    text = f"{ratio:.2f}×" + (f" [{lo:.2f}–{hi:.2f}]" if lo is not None and hi is not None and lo != hi else "")
    return text + (f" {taken * 100:.0f}%" if taken is not None else "")


def _size(row: Row) -> str:
    n = row.get("size_bytes")
    return f"{n / 1e6:.1f} MB" if n else "–"


def _model(row: Row) -> str:
    return f"{row['id']} *" if row.get("is_reference") else str(row["id"])


def _rss(row: Row) -> str:
    rss = row.get("peak_rss_mb")
    if rss is None:
        return "–"
    est, err = row.get("fit_estimate_mb"), row.get("fit_error_pct")
    if est is None or err is None:
        return f"{rss:.0f}"
    return f"{rss:.0f} (est {est:.0f}, {err:+.0f}%)"


@dataclass(frozen=True)
class Column:
    key: str  # the JSON key exported for this column (CSV header)
    header: str
    fmt: Callable[[Row], str]
    justify: str = "right"


LLM_COLUMNS = (
    Column("id", "model", _model, "left"),
    Column("size_bytes", "size", _size),
    Column("load_s", "load s", _num("load_s", 2, "load_s_sd")),
    Column("pp_tps", "pp512 t/s", _num("pp_tps", 1, "pp_tps_sd")),
    Column("tg_tps", "tg128 t/s", _num("tg_tps", 1, "tg_tps_sd")),
    Column("ttft_ms", "TTFT ms", _num("ttft_ms", 0, "ttft_ms_sd")),
    Column("peak_rss_mb", "peak RSS MiB", _rss),
    Column("ppl_ratio", "PPL ratio", _num("ppl_ratio", 3)),
    Column("kld", "KLD", _num("kld", 4)),
    Column("top1_agreement", "top-1", _num("top1_agreement", 1, pct=True)),
    Column("accuracy", "accuracy", _num("accuracy", 1, pct=True)),
    Column("accuracy_diff", "Δacc pts", _diff),
    Column("per", "PER", _per),
)
SPEECH_COLUMNS = (
    Column("id", "model", _model, "left"),
    Column("size_bytes", "size", _size),
    Column("load_s", "load s", _num("load_s", 2, "load_s_sd")),
    Column("rtf", "RTF", _num("rtf", 3, "rtf_sd")),
    Column("x_realtime", "× real time", _num("x_realtime", 1)),
    Column("wer", "WER", _num("wer", 1, pct=True)),
    Column("latency_ms", "5 s clip ms", _num("latency_ms", 0, "latency_ms_sd")),
    Column("peak_rss_mb", "peak RSS MiB", _rss),
    Column("per", "PER", _per),
)
# Every numeric key a CSV export carries, in order (the display columns plus their spreads and extras).
# Each figure's 95 % interval follows it as ``_lo``, ``_hi``; rows stored before the intervals leave them empty.
LLM_CSV_KEYS = (
    "id", "reference", "family", "quant", "size_bytes", "bpw", "load_s", "load_s_sd", "load_s_lo", "load_s_hi",
    "pp_tps", "pp_tps_sd", "pp_tps_lo", "pp_tps_hi", "tg_tps", "tg_tps_sd", "tg_tps_lo", "tg_tps_hi", "ttft_ms",
    "ttft_ms_sd", "ttft_ms_lo", "ttft_ms_hi", "peak_rss_mb", "fit_estimate_mb", "fit_error_pct", "ppl",
    "ppl_ratio", "ppl_ratio_se", "ppl_ratio_lo", "ppl_ratio_hi", "kld", "kld_se", "kld_lo", "kld_hi", "kld_p99",
    "kld_max", "top1_agreement", "top1_agreement_se", "top1_agreement_lo", "top1_agreement_hi", "quality_note",
    "accuracy", "accuracy_lo", "accuracy_hi", "accuracy_diff", "accuracy_diff_lo", "accuracy_diff_hi",
    "accuracy_diff_p", "accuracy_diff_significant", "per", "per_lo", "per_hi",
)  # fmt: skip
SPEECH_CSV_KEYS = (
    "id", "reference", "family", "compute_type", "size_bytes", "load_s", "load_s_sd", "load_s_lo", "load_s_hi",
    "rtf", "rtf_sd", "rtf_lo", "rtf_hi", "x_realtime", "wer", "wer_lo", "wer_hi", "latency_ms", "latency_ms_sd",
    "peak_rss_mb", "fit_estimate_mb", "fit_error_pct", "per", "per_lo", "per_hi",
)  # fmt: skip
LEGEND = "* reference (PER = 1); ± = half the 95 % interval (older runs: the sd of the repetitions)"
LLM_LEGEND = LEGEND + "; Δacc = accuracy minus the reference's, * = significant (exact McNemar p < 0.05)"


def legend(run: Run) -> str:
    return LEGEND if run.kind == "whisper" else LLM_LEGEND


def notes(run: Run) -> list[str]:
    """Why a row shows no quality figures (``quality_note``: e.g. a reference with another vocabulary)."""
    return [f"{row['id']}: {row['quality_note']}" for row in run.rows if row.get("quality_note")]


# ``bench --speculative``: prompt lookup against plain decoding on grounded prompts (``spec.py``), before PER.
SPEC_COLUMN = Column("spec_ratio", "lookup ×, taken", _lookup)


def _has_spec(run: Run) -> bool:
    return run.kind != "whisper" and any(row.get("spec_ratio") is not None for row in run.rows)


def columns(run: Run) -> tuple[Column, ...]:
    if run.kind == "whisper":
        return SPEECH_COLUMNS
    return (*LLM_COLUMNS[:-1], SPEC_COLUMN, LLM_COLUMNS[-1]) if _has_spec(run) else LLM_COLUMNS


def csv_keys(run: Run) -> tuple[str, ...]:
    if run.kind == "whisper":
        return SPEECH_CSV_KEYS
    return (*LLM_CSV_KEYS, *spec.KEYS) if _has_spec(run) else LLM_CSV_KEYS


def when(run: Run) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at)) if run.created_at else "–"


def machine_line(run: Run) -> str:
    f = run.fingerprint
    parts = [
        str(f.get("cpu") or "?"),
        f"{f.get('physical_cores')} cores",
        f"{f.get('ram_gb')} GB RAM",
        str(f.get("os") or "?"),
        f"llama-cpp-python {f.get('llama_cpp')}" if run.kind == "llm" else f"ctranslate2 {f.get('ctranslate2')}",
        f"{run.threads} threads",
    ]
    if run.kind == "llm":
        parts.append(f"ctx {run.context}")
    return " · ".join(parts)


def title(run: Run) -> str:
    label = f"run {run.id}" if run.id is not None else "run"
    mode = " (quick)" if run.quick else ""
    return f"{label}{mode}, {when(run)}"


def rich_table(run: Run) -> Any:
    from rich.table import Table

    # stored runs hold model ids, names and machine facts: every cell is plain Text, never markup
    caption = plain("\n".join((machine_line(run), legend(run), *notes(run))))
    table = Table(title=plain(title(run)), caption=caption, caption_justify="left")
    for col in columns(run):
        table.add_column(col.header, justify=col.justify)  # type: ignore[arg-type]
    for row in run.rows:
        table.add_row(*(plain(col.fmt(row)) for col in columns(run)))
    return table


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def family_markdown(run: Run) -> list[str]:
    """Accuracy by task family, one row per variant with a 95 % Wilson interval per cell; no lines for a
    run without per-family results (speech, or stored before they existed)."""
    tables = {str(r["id"]): r["accuracy_by_family"] for r in run.rows if isinstance(r.get("accuracy_by_family"), dict)}
    families = sorted({str(f) for table in tables.values() for f in table})
    if not families:
        return []
    lines = ["", "| accuracy by family | " + " | ".join(_md_cell(f) for f in families) + " |"]
    lines.append("|---|" + "---:|" * len(families))
    for model_id, table in tables.items():
        cells = [_num("accuracy", 1, pct=True)(c) if isinstance(c := table.get(f), dict) else "–" for f in families]
        lines.append("| " + " | ".join(_md_cell(x) for x in (model_id, *cells)) + " |")
    return lines


def markdown(run: Run, verdict: dict[str, Any] | None = None) -> str:
    cols = columns(run)
    lines = [
        "| " + " | ".join(c.header for c in cols) + " |",
        "|" + "|".join("---" if c.justify == "left" else "---:" for c in cols) + "|",
    ]
    for row in run.rows:
        lines.append("| " + " | ".join(_md_cell(c.fmt(row)) for c in cols) + " |")
    lines.extend(family_markdown(run))
    lines.append("")
    lines.append(f"{title(run)}; {machine_line(run)}. {_md_text(legend(run))}.")
    lines.extend(f"- {_md_text(clean(note, one_line=True))}" for note in notes(run))
    if verdict is not None:
        lines.extend(("", markdown_verdict(verdict)))
    return "\n".join(lines) + "\n"


def verdict_line(verdict: dict[str, Any]) -> str:
    """The verdict as one plain line (its reason names the chosen variant)."""
    if not verdict.get("id"):
        return f"verdict: none ({verdict.get('reason') or 'no results'})"
    return f"verdict: {verdict.get('reason') or verdict['id']}"


def render_verdict(verdict: dict[str, Any]) -> Any:
    """The verdict as a Rich ``Text`` (its ids are untrusted: never markup)."""
    return plain(verdict_line(verdict), one_line=True)


def markdown_verdict(verdict: dict[str, Any]) -> str:
    """The verdict for a Markdown export: the line in bold, then what the budget ruled out."""
    out = [f"**{_md_text(clean(verdict_line(verdict), one_line=True))}**"]
    for model_id, why in (verdict.get("rejected") or {}).items():
        out.append(f"- {_md_text(clean(f'{model_id}: {why}', one_line=True))}")
    return "\n".join(out)


def _md_text(text: str) -> str:
    """Markdown punctuation in ids escaped, so a model id cannot become a link or emphasis."""
    return "".join("\\" + ch if ch in "\\`*_[]<>|#" else ch for ch in text)


def csv_text(run: Run) -> str:
    buf = io.StringIO()
    keys = csv_keys(run)
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("run_id", *keys))
    for row in run.rows:
        writer.writerow((run.id, *("" if row.get(k) is None else row.get(k) for k in keys)))
    return buf.getvalue()


def json_text(run: Run, verdict: dict[str, Any] | None = None) -> str:
    """The run as JSON (each result row carries its ``accuracy_by_family``), with the verdict when given."""
    data = run.to_json()
    if verdict is not None:
        data["verdict"] = verdict
    return json.dumps(data, indent=2) + "\n"


def export(run: Run, fmt: str, verdict: dict[str, Any] | None = None) -> str:
    if fmt == "csv":
        return csv_text(run)
    if fmt == "md":
        return markdown(run, verdict)
    return json_text(run, verdict)


def history_table(runs: list[Run]) -> Any:
    from rich.table import Table

    table = Table(title="benchmark runs")
    for header in ("run", "when", "kind", "models", "mode", "threads", "ctx", "machine", "wall s"):
        table.add_column(header, justify="right" if header in ("run", "threads", "ctx", "wall s") else "left")
    for run in runs:
        cells = (
            str(run.id),
            when(run),
            run.kind,
            ", ".join(run.model_ids),
            "quick" if run.quick else "full",
            str(run.threads or "–"),
            str(run.context or "–"),
            f"{run.fingerprint.get('cpu', '?')} [{run.digest}]",
            f"{run.wall_s:.0f}" if run.wall_s is not None else "–",
        )
        table.add_row(*map(plain, cells))
    return table


def compare_rows(runs: list[Run]) -> list[Row]:
    """One row per (run, model), runs in the order given: the same variant measured in different runs."""
    out = []
    for run in runs:
        for row in run.rows:
            out.append({"run_id": run.id, "machine": run.digest, "threads": run.threads, **row})
    out.sort(key=lambda r: (r["id"], [x.id for x in runs].index(r["run_id"])))
    return out


def compare_table(runs: list[Run]) -> Any:
    from rich.table import Table

    from . import fingerprint

    kinds = {r.kind for r in runs}
    cols = SPEECH_COLUMNS if kinds == {"whisper"} else LLM_COLUMNS
    notes = []
    for other in runs[1:]:
        diff = fingerprint.differences(runs[0].fingerprint, other.fingerprint)
        if runs[0].quick != other.quick:
            diff.append(f"mode: {'quick' if runs[0].quick else 'full'} -> {'quick' if other.quick else 'full'}")
        notes.append(f"run {runs[0].id} vs {other.id}: " + ("; ".join(diff) if diff else "same machine and settings"))
    table = Table(title="compare " + ", ".join(f"run {r.id}" for r in runs), caption=plain("\n".join(notes)))
    table.add_column("run", justify="right")
    for col in cols:
        table.add_column(col.header, justify=col.justify)  # type: ignore[arg-type]
    for row in compare_rows(runs):
        table.add_row(str(row["run_id"]), *(plain(col.fmt(row)) for col in cols))
    return table
