"""Quality vs speed vs size for one run: a terminal plot (plotext), an SVG (written here), a PNG (matplotlib,
only when it is installed: it is not a dependency).

LLM runs plot generation speed (tg128 tok/s) against top-1 agreement with the reference; speech runs plot
speed as multiples of real time (1 / RTF) against word accuracy (1 − WER). Each point is labelled with its
tag and file size; in the SVG and PNG the marker area is proportional to the file size.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AssistantError
from .results import Run


@dataclass
class Point:
    label: str
    x: float
    y: float
    size_mb: float
    reference: bool


@dataclass
class Axes:
    title: str
    x_label: str
    y_label: str
    points: list[Point]


def axes(run: Run) -> Axes:
    points = []
    for row in run.rows:
        size = (row.get("size_bytes") or 0) / 1e6
        tag = str(row["id"]).split(":", 1)[-1]
        if run.kind == "whisper":
            rtf = float(row.get("rtf") or 0.0)
            x, y = (1 / rtf if rtf else 0.0), (1 - float(row.get("wer") or 0.0)) * 100
        else:
            x, y = float(row.get("tg_tps") or 0), float(row.get("top1_agreement") or 0) * 100
        points.append(Point(f"{tag} {size:.0f}MB", x, y, size, bool(row.get("is_reference"))))
    if not points:
        raise AssistantError(f"run {run.id} has no results to plot", "see 'assistant bench history'")
    if run.kind == "whisper":
        return Axes(f"run {run.id}: accuracy vs speed", "× real time (1/RTF)", "word accuracy % (1 − WER)", points)
    return Axes(f"run {run.id}: quality vs speed", "tg128 tok/s", "top-1 agreement % vs reference", points)


def _padded(values: list[float], share: float = 0.15) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = hi - lo or max(abs(hi), 1.0) * 0.1
    low = lo - span * share
    return (max(low, 0.0) if lo >= 0 else low), hi + span * share


def terminal(run: Run, width: int = 80, height: int = 22, color: bool = True) -> str:
    """The plot as text (ANSI colours unless ``color`` is False)."""
    import plotext as plt

    a = axes(run)
    xs, ys = [p.x for p in a.points], [p.y for p in a.points]
    (x0, x1), (y0, y1) = _padded(xs), _padded(ys)
    label_dy = (y1 - y0) * 0.06
    if hasattr(plt, "scatter"):  # plotext 5.x: module-level state
        plt.clear_figure()
        plt.plotsize(width, height)
        plt.scatter(xs, ys, marker="dot")
        for p in a.points:
            plt.text(p.label, p.x, p.y + label_dy)
        plt.xlim(x0, x1)
        plt.ylim(y0, y1)
        plt.title(a.title)
        plt.xlabel(a.x_label)
        plt.ylabel(a.y_label)
        if not color:
            plt.theme("clear")
        return str(plt.build())
    fig = plt.figure  # plotext 6.x: an explicit figure object
    fig.clear()
    fig.plot_size(width, height)
    if not color:
        fig.theme("colorless")
    fig.draw(fig.signal(xs, ys, marker="●"))
    for p in a.points:
        fig.draw(fig.text(p.x, p.y + label_dy, p.label + (" *" if p.reference else "")))
    fig.ruler(axis=0).lim(x0, x1)
    fig.ruler(axis=1).lim(y0, y1)
    fig.title(a.title)
    fig.label(a.x_label, axis=0)
    fig.label(a.y_label, axis=1)
    return str(fig.build().string(colorless=not color))


def svg(run: Run, width: int = 720, height: int = 480) -> str:
    """A self-contained SVG bubble chart."""
    a = axes(run)
    left, right, top, bottom = 70, 30, 40, 60
    (x0, x1), (y0, y1) = _padded([p.x for p in a.points], 0.2), _padded([p.y for p in a.points], 0.2)
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    max_size = max((p.size_mb for p in a.points), default=1.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{html.escape(a.title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>',
    ]
    for i in range(6):
        xv = x0 + (x1 - x0) * i / 5
        yv = y0 + (y1 - y0) * i / 5
        out.append(f'<line x1="{sx(xv):.1f}" y1="{top + ph}" x2="{sx(xv):.1f}" y2="{top + ph + 5}" stroke="#444"/>')
        out.append(f'<text x="{sx(xv):.1f}" y="{top + ph + 18}" text-anchor="middle">{_tick(xv)}</text>')
        out.append(f'<line x1="{left - 5}" y1="{sy(yv):.1f}" x2="{left}" y2="{sy(yv):.1f}" stroke="#444"/>')
        out.append(f'<text x="{left - 8}" y="{sy(yv) + 4:.1f}" text-anchor="end">{_tick(yv)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 15}" text-anchor="middle">{html.escape(a.x_label)}</text>')
    out.append(
        f'<text x="16" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {top + ph / 2})">'
        f"{html.escape(a.y_label)}</text>"
    )
    for p in a.points:
        r = 4 + 18 * math.sqrt(p.size_mb / max_size)
        fill = "#d62728" if p.reference else "#1f77b4"
        out.append(
            f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{r:.1f}" fill="{fill}" fill-opacity="0.45" stroke="{fill}"/>'
        )
        label = html.escape(p.label + (" (reference)" if p.reference else ""))
        out.append(f'<text x="{sx(p.x):.1f}" y="{sy(p.y) - r - 4:.1f}" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _tick(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def check_png(path: Path) -> None:
    """Fail before any work if a PNG was asked for and matplotlib is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise AssistantError(
            "PNG output needs matplotlib, which is not installed",
            f"use --svg {path.with_suffix('.svg').name} instead, or install the extra: pip install 'assistant[plot]'",
        )


def png(run: Run, path: Path) -> None:
    """A PNG through matplotlib, if installed; otherwise an error pointing at the SVG."""
    check_png(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as mpl

    a = axes(run)
    max_size = max((p.size_mb for p in a.points), default=1.0) or 1.0
    fig: Any
    fig, ax = mpl.subplots(figsize=(8, 5.5), dpi=120)
    for p in a.points:
        ax.scatter([p.x], [p.y], s=40 + 900 * p.size_mb / max_size, alpha=0.5, color="C3" if p.reference else "C0")
        ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(0, 12), ha="center")
    ax.set_title(a.title)
    ax.set_xlabel(a.x_label)
    ax.set_ylabel(a.y_label)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    mpl.close(fig)
    from .. import paths

    paths.private(path)  # an export is the user's data: 0600, as every file the app writes
