"""Benchmark results in the TUI: the stored runs as a table plus the quality-vs-speed plot, and a re-run.

Reading runs and running a benchmark are thread workers (``bench-db``, ``bench``); they post
``BenchRunsLoaded`` / ``BenchProgressed`` / ``BenchFinished`` and never touch widgets. A re-run is the
same domain call as ``assistant bench --quick`` (each variant in its own child process), cancelled with
Escape; nothing is stored unless it finishes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ... import errors
from ...chat import CancelToken
from ...untrusted import clean, plain

if TYPE_CHECKING:
    from ...bench.results import Run

PROGRESS_INTERVAL = 0.1  # seconds between progress messages from the benchmark worker


class BenchRunsLoaded(Message):
    """The stored runs were read (newest first); ``select`` is the run id to show."""

    def __init__(self, runs: list[Run], select: int | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.select = select


class BenchProgressed(Message):
    def __init__(self, done: int, total: int, label: str) -> None:
        super().__init__()
        self.done = done
        self.total = total
        self.label = label


class BenchFinished(Message):
    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id


class BenchScreen(Screen[None]):
    """Stored benchmark runs: ``[`` / ``]`` move between runs, ``r`` re-runs the shown one with ``--quick``."""

    DEFAULT_CSS = """
    BenchScreen { layout: vertical; }
    BenchScreen #bench-header { height: auto; }
    BenchScreen #bench-title { padding: 0 1; text-style: bold; width: 1fr; }
    BenchScreen #bench-machine { padding: 0 1; color: $text-muted; }
    BenchScreen #bench-table { height: auto; max-height: 50%; }
    BenchScreen #bench-plot { height: 1fr; min-height: 8; padding: 0 1; }
    BenchScreen #bench-progress-row { height: auto; display: none; padding: 0 1; }
    BenchScreen #bench-progress-row.-running { display: block; }
    BenchScreen #bench-status { padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="bench.close", tooltip="Stop a running benchmark, or go back"),
        Binding("left_square_bracket", "previous_run", "Older", id="bench.previous", tooltip="Show the older run"),
        Binding("right_square_bracket", "next_run", "Newer", id="bench.next", tooltip="Show the newer run"),
        Binding("r", "rerun", "Re-run (quick)", id="bench.rerun", tooltip="Benchmark this run's models again"),
    ]

    def __init__(self, run_id: int | None = None) -> None:
        super().__init__()
        self.runs: list[Run] = []
        self.index = 0
        self._want = run_id
        self._cancel: CancelToken | None = None
        self._notice = ""  # shown once the runs are read again (e.g. "saved as run 7")

    def compose(self) -> ComposeResult:
        with Horizontal(id="bench-header"):
            # stored runs (machine facts, model ids) and error texts are data: these labels never parse markup
            yield Label("Benchmarks", id="bench-title", markup=False)
        yield Label("", id="bench-machine", markup=False)
        yield DataTable(id="bench-table", zebra_stripes=True, cursor_type="row")
        yield Static("", id="bench-plot")
        with Vertical(id="bench-progress-row"):
            yield ProgressBar(id="bench-progress", show_eta=False)
        yield Label("", id="bench-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#bench-status", Label).update("reading stored runs…")
        self._load(self._want)

    # -- workers ------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="bench-db")
    def _load(self, select: int | None = None) -> None:
        from ...bench import results

        self.post_message(BenchRunsLoaded(results.history(50), select))

    @work(thread=True, exclusive=True, exit_on_error=False, group="bench")
    def _rerun(self, run: Run, cancel: CancelToken) -> None:
        from ...bench import results, runner

        worker = get_current_worker()
        ids = run.model_ids
        reference = next((r["id"] for r in run.rows if r.get("is_reference")), None)
        units: dict[str, int] = {}
        done: dict[str, int] = {}
        last = 0.0

        def progress(model_id: str, event: dict[str, Any]) -> None:
            nonlocal last
            if worker.is_cancelled:
                cancel.cancel()
            if event.get("event") == "plan":
                units[model_id] = int(event["units"])
            elif event.get("event") == "advance":
                done[model_id] = done.get(model_id, 0) + 1
            total = max(len(ids), 1) * max(units.values(), default=1)
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                last = now
                label = f"{model_id}: {event.get('stage', event.get('event'))}"
                self.post_message(BenchProgressed(sum(done.values()), total, label))

        opts = runner.Options(quick=True, reps=1, threads=run.threads or 1, ctx=run.context or 4096)
        new = runner.run(runner.plan(ids, reference), options=opts, progress=progress, cancel=cancel)
        run_id = results.save(new)
        self.post_message(BenchFinished(run_id))

    # -- messages ----------------------------------------------------------------------------------------

    def on_bench_runs_loaded(self, message: BenchRunsLoaded) -> None:
        self.runs = message.runs
        self.index = 0
        if message.select is not None:
            for i, run in enumerate(self.runs):
                if run.id == message.select:
                    self.index = i
        status = self._notice if self.runs else "no benchmark runs yet: run 'assistant bench MODEL... --quick'"
        self._notice = ""
        self.query_one("#bench-status", Label).update(status)
        self._show()

    def on_bench_progressed(self, message: BenchProgressed) -> None:
        self.query_one("#bench-progress", ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#bench-status", Label).update(clean(message.label, one_line=True))

    def on_bench_finished(self, message: BenchFinished) -> None:
        self._set_running(False)
        self._notice = f"saved as run {message.run_id}"
        self._load(message.run_id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group not in ("bench", "bench-db"):
            return
        if event.state == WorkerState.ERROR:
            text = errors.one_line(event.worker.error, typed=True)
            self._set_running(False)
            self.query_one("#bench-status", Label).update(f"failed: {clean(text, one_line=True)}")
            self.notify(text, title="benchmark", severity="error", timeout=8)
        elif event.state == WorkerState.CANCELLED and event.worker.group == "bench":
            self._set_running(False)
            self.query_one("#bench-status", Label).update("cancelled: nothing was stored")

    def on_resize(self) -> None:
        self._show_plot()

    # -- actions -----------------------------------------------------------------------------------------

    def action_close(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self.workers.cancel_group(self, "bench")
            return
        self.dismiss(None)

    def action_previous_run(self) -> None:
        if self.index + 1 < len(self.runs):
            self.index += 1
            self._show()

    def action_next_run(self) -> None:
        if self.index > 0:
            self.index -= 1
            self._show()

    def action_rerun(self) -> None:
        if self._cancel is not None or not self.runs:
            return
        self._cancel = CancelToken()
        self._set_running(True)
        self.query_one("#bench-status", Label).update("starting benchmark…")
        self._rerun(self.runs[self.index], self._cancel)

    # -- rendering ---------------------------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        if not running:
            self._cancel = None
        self.query_one("#bench-progress-row").set_class(running, "-running")

    @property
    def current(self) -> Run | None:
        return self.runs[self.index] if self.runs else None

    def _show(self) -> None:
        from ...bench import report

        table = self.query_one("#bench-table", DataTable)
        table.clear(columns=True)
        run = self.current
        if run is None:
            self.query_one("#bench-title", Label).update("Benchmarks")
            self.query_one("#bench-machine", Label).update("")
            self.query_one("#bench-plot", Static).update("")
            return
        cols = report.columns(run)
        for col in cols:
            table.add_column(col.header, key=col.key)
        for row in run.rows:
            table.add_row(*(plain(col.fmt(row)) for col in cols), key=str(row["id"]))  # str cells are markup
        position = f"{self.index + 1}/{len(self.runs)}"
        self.query_one("#bench-title", Label).update(clean(f"Benchmark {report.title(run)}  [{position}]"))
        machine = clean(report.machine_line(run), one_line=True)
        self.query_one("#bench-machine", Label).update(machine + "  · * reference (PER = 1)")
        self._show_plot()

    def _show_plot(self) -> None:
        from rich.text import Text

        from ...bench import plot

        run = self.current
        widget = self.query_one("#bench-plot", Static)
        if run is None or not run.rows:
            return
        width = max(40, widget.size.width - 2 or self.size.width - 4)
        height = max(10, widget.size.height or 16)
        widget.update(Text.from_ansi(plot.terminal(run, width=width, height=height, color=True)))
