"""Quality vs speed vs size for one run: a terminal plot (plotext), an SVG (written here), a PNG (matplotlib,
only when it is installed: it is not a dependency).

LLM runs plot generation speed (tg128 tok/s) against top-1 agreement with the reference; speech runs plot
speed as multiples of real time (1 / RTF) against word accuracy (1 − WER). Each point is labelled with its
tag and file size; in the SVG and PNG the marker area is proportional to the file size.

Two marks come from ``verdict``: the Pareto front (variants no other beats on accuracy, speed and memory at
once; a diamond in the terminal, a dashed line in the SVG and PNG) and the variant the verdict chooses (a
check mark, a ring). The SVG draws each point's 95 % intervals as whiskers when the run has them. A run
stored before the intervals and the verdict existed plots as before: a missing interval draws no whisker.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AssistantError
from ..untrusted import clean
from . import verdict as verdict_mod
from .results import Run
from .stats import number

FRONT = "◆ Pareto front, ✓ verdict"


@dataclass
class Point:
    label: str
    x: float
    y: float
    size_mb: float
    reference: bool
    pareto: bool = False
    chosen: bool = False
    x_range: tuple[float, float] | None = None  # 95 % interval, in the plot's units
    y_range: tuple[float, float] | None = None


@dataclass
class Axes:
    title: str
    x_label: str
    y_label: str
    points: list[Point]


def _range(row: dict[str, Any], key: str, scale: float = 1.0, invert: bool = False) -> tuple[float, float] | None:
    """``key``'s 95 % interval in plot units (``invert``: 1 - x, as WER plots as word accuracy)."""
    lo, hi = number(row.get(f"{key}_lo")), number(row.get(f"{key}_hi"))
    if lo is None or hi is None:
        return None
    if invert:
        lo, hi = 1 - hi, 1 - lo
    return lo * scale, hi * scale


def _point(kind: str, row: dict[str, Any]) -> Point:
    size = (number(row.get("size_bytes")) or 0) / 1e6
    tag = str(row["id"]).split(":", 1)[-1]
    if kind == "whisper":
        rtf = number(row.get("rtf")) or 0.0
        x, y = (1 / rtf if rtf else 0.0), (1 - (number(row.get("wer")) or 0.0)) * 100
        lo, hi = number(row.get("rtf_lo")), number(row.get("rtf_hi"))
        x_range = (1 / hi, 1 / lo) if lo and hi else None
        y_range = _range(row, "wer", 100, invert=True)
    else:
        x, y = number(row.get("tg_tps")) or 0.0, (number(row.get("top1_agreement")) or 0.0) * 100
        x_range, y_range = _range(row, "tg_tps"), _range(row, "top1_agreement", 100)
    # a model id is untrusted: no control codes in the terminal plot (or in the SVG, where XML forbids them)
    return Point(
        clean(f"{tag} {size:.0f}MB", one_line=True),
        x,
        y,
        size,
        bool(row.get("is_reference")),
        x_range=x_range,
        y_range=y_range,
    )


def axes(run: Run, chosen: str | None = None) -> Axes:
    """The plot's points; ``chosen`` is the verdict's variant (by default, the verdict without a budget)."""
    if not run.rows:
        raise AssistantError(f"run {run.id} has no results to plot", "see 'assistant bench history'")
    decided = verdict_mod.verdict(run.rows)
    front = set(decided["pareto"])
    chosen = decided["id"] if chosen is None else chosen
    points = []
    for row in run.rows:
        point = _point(run.kind, row)
        point.pareto, point.chosen = str(row["id"]) in front, str(row["id"]) == chosen
        points.append(point)
    if run.kind == "whisper":
        return Axes(f"run {run.id}: accuracy vs speed", "× real time (1/RTF)", "word accuracy % (1 − WER)", points)
    return Axes(f"run {run.id}: quality vs speed", "tg128 tok/s", "top-1 agreement % vs reference", points)


def _mark(p: Point) -> str:
    return p.label + (" *" if p.reference else "") + (" ✓" if p.chosen else "")


def _padded(values: list[float], share: float = 0.15) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = hi - lo or max(abs(hi), 1.0) * 0.1
    low = lo - span * share
    return (max(low, 0.0) if lo >= 0 else low), hi + span * share


def terminal(run: Run, width: int = 80, height: int = 22, color: bool = True, chosen: str | None = None) -> str:
    """The plot as text (ANSI colours unless ``color`` is False)."""
    import plotext as plt

    a = axes(run, chosen)
    xs, ys = [p.x for p in a.points], [p.y for p in a.points]
    (x0, x1), (y0, y1) = _padded(xs), _padded(ys)
    label_dy = (y1 - y0) * max(0.06, 1.2 / max(height - 6, 1))  # at least a text row above its point
    if hasattr(plt, "scatter"):  # plotext 5.x: module-level state
        plt.clear_figure()
        plt.plotsize(width, height)
        plt.scatter(xs, ys, marker="dot")
        front = [p for p in a.points if p.pareto]
        plt.scatter([p.x for p in front], [p.y for p in front], marker="◆")
        for p in a.points:
            plt.text(_mark(p), p.x, p.y + label_dy)
        plt.xlim(x0, x1)
        plt.ylim(y0, y1)
        plt.title(f"{a.title} ({FRONT})")
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
    others = [p for p in a.points if not p.pareto]
    front = [p for p in a.points if p.pareto]
    for group, marker in ((others, "●"), (front, "◆")):
        if group:
            fig.draw(fig.signal([p.x for p in group], [p.y for p in group], marker=marker))
    for p in a.points:  # labels right of the middle end at their point, so they are not cut at the border
        align = "right" if p.x > (x0 + x1) / 2 else "left"
        fig.draw(fig.text(p.x, p.y + label_dy, _mark(p), alignment=align))
    fig.ruler(axis=0).lim(x0, x1)
    fig.ruler(axis=1).lim(y0, y1)
    fig.title(f"{a.title} ({FRONT})")
    fig.label(a.x_label, axis=0)
    fig.label(a.y_label, axis=1)
    return str(fig.build().string(colorless=not color))


def svg(run: Run, width: int = 720, height: int = 480, chosen: str | None = None) -> str:
    """A self-contained SVG bubble chart."""
    a = axes(run, chosen)
    left, right, top, bottom = 70, 30, 40, 60
    xs = [v for p in a.points for v in (p.x, *(p.x_range or ()))]
    ys = [v for p in a.points for v in (p.y, *(p.y_range or ()))]
    (x0, x1), (y0, y1) = _padded(xs, 0.2), _padded(ys, 0.2)
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    max_size = max((p.size_mb for p in a.points), default=1.0) or 1.0
    front = sorted((p for p in a.points if p.pareto), key=lambda p: p.x)
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
    if len(front) > 1:
        path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in front)
        out.append(f'<polyline points="{path}" fill="none" stroke="#2ca02c" stroke-dasharray="6 4"/>')
    out.append(f'<text x="{left + pw}" y="{top - 6}" text-anchor="end" fill="#2ca02c">{html.escape(FRONT)}</text>')
    for p in a.points:
        out.extend(_whiskers(p, sx, sy))
        r = 4 + 18 * math.sqrt(p.size_mb / max_size)
        fill = "#d62728" if p.reference else "#1f77b4"
        out.append(
            f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{r:.1f}" fill="{fill}" fill-opacity="0.45" stroke="{fill}"/>'
        )
        if p.chosen:
            out.append(
                f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{r + 4:.1f}" fill="none" stroke="#2ca02c"'
                ' stroke-width="3"/>'
            )
        label = html.escape(
            p.label + (" (reference)" if p.reference else "") + (" ◆" if p.pareto else "") + (" ✓" if p.chosen else "")
        )
        out.append(f'<text x="{sx(p.x):.1f}" y="{sy(p.y) - r - 4:.1f}" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _whiskers(p: Point, sx: Callable[[float], float], sy: Callable[[float], float]) -> list[str]:
    """The 95 % intervals of a point as grey lines through it (none for a run stored without them)."""
    out = []
    if p.x_range:
        out.append(
            f'<line x1="{sx(p.x_range[0]):.1f}" y1="{sy(p.y):.1f}" x2="{sx(p.x_range[1]):.1f}" y2="{sy(p.y):.1f}"'
            ' stroke="#888"/>'
        )
    if p.y_range:
        out.append(
            f'<line x1="{sx(p.x):.1f}" y1="{sy(p.y_range[0]):.1f}" x2="{sx(p.x):.1f}" y2="{sy(p.y_range[1]):.1f}"'
            ' stroke="#888"/>'
        )
    return out


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


def png(run: Run, path: Path, chosen: str | None = None) -> None:
    """A PNG through matplotlib, if installed; otherwise an error pointing at the SVG."""
    check_png(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as mpl

    a = axes(run, chosen)
    max_size = max((p.size_mb for p in a.points), default=1.0) or 1.0
    fig: Any
    fig, ax = mpl.subplots(figsize=(8, 5.5), dpi=120)
    front = sorted((p for p in a.points if p.pareto), key=lambda p: p.x)
    if len(front) > 1:
        ax.plot([p.x for p in front], [p.y for p in front], "--", color="C2", label="Pareto front")
    for p in a.points:
        if p.x_range or p.y_range:
            xerr = [[p.x - p.x_range[0]], [p.x_range[1] - p.x]] if p.x_range else None
            yerr = [[p.y - p.y_range[0]], [p.y_range[1] - p.y]] if p.y_range else None
            ax.errorbar([p.x], [p.y], xerr=xerr, yerr=yerr, fmt="none", ecolor="grey", lw=1)
        size = 40 + 900 * p.size_mb / max_size
        ax.scatter([p.x], [p.y], s=size, alpha=0.5, color="C3" if p.reference else "C0")
        if p.chosen:
            ax.scatter([p.x], [p.y], s=size * 1.6, facecolors="none", edgecolors="C2", linewidths=2, label="verdict")
        ax.annotate(_mark(p), (p.x, p.y), textcoords="offset points", xytext=(0, 12), ha="center")
    if front or any(p.chosen for p in a.points):
        ax.legend(loc="best")
    ax.set_title(a.title)
    ax.set_xlabel(a.x_label)
    ax.set_ylabel(a.y_label)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    mpl.close(fig)
    from .. import paths

    paths.private(path)  # an export is the user's data: 0600, as every file the app writes
