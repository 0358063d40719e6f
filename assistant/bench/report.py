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

from ..untrusted import plain
from .results import Run

Row = dict[str, Any]


def _num(key: str, digits: int = 1, sd: str | None = None, pct: bool = False) -> Callable[[Row], str]:
    def fmt(row: Row) -> str:
        value = row.get(key)
        if value is None:
            return "–"
        scale = 100 if pct else 1
        text = f"{value * scale:.{digits}f}" + ("%" if pct else "")
        if sd and row.get(sd):
            text += f" ± {row[sd] * scale:.{digits}f}"
        return text

    return fmt


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
    Column("per", "PER", _num("per", 3)),
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
    Column("per", "PER", _num("per", 3)),
)
# Every numeric key a CSV export carries, in order (the display columns plus their spreads and extras).
LLM_CSV_KEYS = (
    "id", "reference", "quant", "size_bytes", "bpw", "load_s", "load_s_sd", "pp_tps", "pp_tps_sd", "tg_tps",
    "tg_tps_sd", "ttft_ms", "ttft_ms_sd", "peak_rss_mb", "fit_estimate_mb", "fit_error_pct", "ppl", "ppl_ratio",
    "kld", "top1_agreement", "accuracy", "per",
)  # fmt: skip
SPEECH_CSV_KEYS = (
    "id", "reference", "compute_type", "size_bytes", "load_s", "load_s_sd", "rtf", "rtf_sd", "x_realtime", "wer",
    "latency_ms", "latency_ms_sd", "peak_rss_mb", "fit_estimate_mb", "fit_error_pct", "per",
)  # fmt: skip


def columns(run: Run) -> tuple[Column, ...]:
    return SPEECH_COLUMNS if run.kind == "whisper" else LLM_COLUMNS


def csv_keys(run: Run) -> tuple[str, ...]:
    return SPEECH_CSV_KEYS if run.kind == "whisper" else LLM_CSV_KEYS


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
    caption = plain(machine_line(run) + "\n* reference (PER = 1)")
    table = Table(title=plain(title(run)), caption=caption, caption_justify="left")
    for col in columns(run):
        table.add_column(col.header, justify=col.justify)  # type: ignore[arg-type]
    for row in run.rows:
        table.add_row(*(plain(col.fmt(row)) for col in columns(run)))
    return table


def markdown(run: Run) -> str:
    cols = columns(run)
    lines = [
        "| " + " | ".join(c.header for c in cols) + " |",
        "|" + "|".join("---" if c.justify == "left" else "---:" for c in cols) + "|",
    ]
    for row in run.rows:
        lines.append("| " + " | ".join(c.fmt(row).replace("|", "\\|") for c in cols) + " |")
    lines.append("")
    lines.append(f"{title(run)}; {machine_line(run)}. `*` = reference (PER = 1).")
    return "\n".join(lines) + "\n"


def csv_text(run: Run) -> str:
    buf = io.StringIO()
    keys = csv_keys(run)
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("run_id", *keys))
    for row in run.rows:
        writer.writerow((run.id, *("" if row.get(k) is None else row.get(k) for k in keys)))
    return buf.getvalue()


def json_text(run: Run) -> str:
    return json.dumps(run.to_json(), indent=2) + "\n"


def export(run: Run, fmt: str) -> str:
    if fmt == "csv":
        return csv_text(run)
    if fmt == "md":
        return markdown(run)
    return json_text(run)


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
