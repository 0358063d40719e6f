"""Benchmark results in the TUI: the stored runs as a table plus the quality-vs-speed plot, a new run
(``n``: the models and Quick or Full chosen in ``NewBenchRun``) and a re-run of the shown one.

Reading runs and running a benchmark are thread workers (``bench-db``, ``bench``); they post
``BenchRunsLoaded`` / ``BenchProgressed`` / ``BenchFinished`` and never touch widgets. A run is the same
domain call as ``assistant bench`` (``runner.plan`` then ``runner.run``, each variant in its own child
process), cancelled with Escape; nothing is stored unless it finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ... import errors
from ...chat import CancelToken
from ...untrusted import clean, plain
from .bench_new import NewBenchRun, NewRun

if TYPE_CHECKING:
    from rich.text import Text

    from ...bench.results import Run
    from ...bench.runner import Options


@dataclass(frozen=True)
class BenchAction:
    """One key of the screen, written once: the binding (footer, tooltip) and the palette command use it."""

    id: str
    action: str
    key: str
    label: str  # in the footer
    title: str  # in the command palette
    help: str  # under the title, and the key's tooltip


ACTIONS: tuple[BenchAction, ...] = (
    BenchAction("bench.close", "close", "escape", "Back", "Back", "Stop a running benchmark, or go back"),
    BenchAction("bench.previous", "previous_run", "left_square_bracket", "Older", "Older run", "Show the older run"),
    BenchAction("bench.next", "next_run", "right_square_bracket", "Newer", "Newer run", "Show the newer run"),
    BenchAction(
        "bench.new", "new_run", "n", "New run", "New benchmark run", "Choose installed models and benchmark them"
    ),
    BenchAction(
        "bench.rerun", "rerun", "r", "Re-run (quick)", "Re-run benchmark", "Benchmark this run's models again, quick"
    ),
)


class BenchCommands(Provider):
    """The bench screen's keys in the command palette (the app's own commands are for the chat screen)."""

    def _commands(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        screen = self.screen
        if not isinstance(screen, BenchScreen):
            return
        for a in ACTIONS:
            if screen.check_action(a.action, ()) is True:
                yield a.title, a.help, screen.palette_callback(a.action)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


@dataclass
class Tally:
    """Where a run is, from its progress events: which variant (of how many), its last step, the bar.

    A language run also measures each family's reference when it was not chosen, so the count of variants
    grows when one starts that was not among the ids asked for."""

    ids: tuple[str, ...]
    order: list[str] = field(default_factory=list)  # variants in the order they started
    units: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    stage: str = "starting"

    def see(self, model_id: str, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if model_id not in self.order:
            self.order.append(model_id)
        if kind == "start":
            self.stage = "starting"
        elif kind == "plan":
            self.units[model_id] = int(event["units"])
        elif kind == "advance":
            self.done[model_id] = self.done.get(model_id, 0) + 1
            self.stage = str(event.get("stage", "step"))
        elif kind == "done":
            self.stage = "done"

    @property
    def variants(self) -> int:
        return len({*self.ids, *self.order})

    @property
    def total(self) -> int:
        return self.variants * max(self.units.values(), default=1)

    @property
    def progress(self) -> int:
        return sum(self.done.values())

    @property
    def label(self) -> str:
        current = self.order[-1] if self.order else ""
        return f"variant {len(self.order)}/{self.variants} · {current} · {self.stage}"


def verdict_line(run: Run) -> Text | None:
    """The run's verdict under the table (runs stored before verdicts existed have none)."""
    from ...bench import report

    return report.render_verdict(run.verdict) if run.verdict else None


class BenchRunsLoaded(Message):
    """The stored runs were read (newest first); ``select`` is the run id to show."""

    def __init__(self, runs: list[Run], select: int | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.select = select


class BenchProgressed(Message):
    """``label``: "variant 2/3 · fam:q4_k_m · quality" (the last step finished); ``token``: the run's, so an event
    still in the queue when that run was cancelled is dropped instead of overwriting "cancelled"."""

    def __init__(self, done: int, total: int, label: str, token: CancelToken) -> None:
        super().__init__()
        self.token = token
        self.done = done
        self.total = total
        self.label = label


class BenchFinished(Message):
    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id


class BenchScreen(Screen[None]):
    """Stored benchmark runs: ``[`` / ``]`` move between runs, ``n`` starts a new run, ``r`` re-runs the shown
    one with ``--quick`` (with no run yet, ``r`` offers a new one)."""

    COMMANDS: ClassVar[set[Any]] = {BenchCommands}

    DEFAULT_CSS = """
    BenchScreen { layout: vertical; }
    BenchScreen #bench-header { height: auto; }
    BenchScreen #bench-title { padding: 0 1; text-style: bold; width: 1fr; }
    BenchScreen #bench-machine { padding: 0 1; color: $text-muted; }
    BenchScreen #bench-table { height: auto; max-height: 50%; }
    BenchScreen #bench-verdict { height: auto; padding: 0 1; display: none; }
    BenchScreen #bench-verdict.-shown { display: block; }
    BenchScreen #bench-plot { height: 1fr; min-height: 8; padding: 0 1; }
    BenchScreen #bench-progress-row { height: auto; display: none; padding: 0 1; }
    BenchScreen #bench-progress-row.-running { display: block; }
    /* the status wraps: with a long model id the step stays in view */
    BenchScreen #bench-status { padding: 0 1; width: 1fr; height: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(a.key, a.action, a.label, id=a.id, tooltip=a.help) for a in ACTIONS
    ]

    def __init__(self, run_id: int | None = None) -> None:
        super().__init__()
        self.runs: list[Run] = []
        self.index = 0
        self._want = run_id
        self._cancel: CancelToken | None = None
        self._notice = ""  # shown once the runs are read again (e.g. "saved as run 7")
        self._loaded = False  # the stored runs have been read
        self._pending_rerun = False  # ``r`` pressed before they were: acted on once they are

    def compose(self) -> ComposeResult:
        with Horizontal(id="bench-header"):
            # stored runs (machine facts, model ids) and error texts are data: these labels never parse markup
            yield Label("Benchmarks", id="bench-title", markup=False)
        yield Label("", id="bench-machine", markup=False)
        yield DataTable(id="bench-table", zebra_stripes=True, cursor_type="row")
        yield Static("", id="bench-verdict")
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
    def _bench(self, ids: tuple[str, ...], reference: str | None, options: Options | bool, cancel: CancelToken) -> None:
        """``options``: the run's own, or just whether it is quick (then threads and context are the configured
        ones, as ``assistant bench`` takes them)."""
        from ... import config
        from ...bench import results, runner

        if isinstance(options, bool):
            settings = config.load()
            options = runner.Options(quick=options, threads=settings.threads(), ctx=settings.runtime.context_size)
        worker = get_current_worker()
        tally = Tally(ids)

        def progress(model_id: str, event: dict[str, Any]) -> None:
            # a handful of events per step (each lasts seconds): every one is shown
            if worker.is_cancelled:
                cancel.cancel()
                return
            tally.see(model_id, event)
            self.post_message(BenchProgressed(tally.progress, tally.total, tally.label, cancel))

        new = runner.run(runner.plan(ids, reference), options=options, progress=progress, cancel=cancel)
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
        status = self._notice if self.runs else "no benchmark runs yet: press n to start one"
        self._notice = ""
        self.query_one("#bench-status", Label).update(status)
        self._loaded = True
        self._show()
        if self._pending_rerun:
            self._pending_rerun = False
            self.action_rerun()

    def on_bench_progressed(self, message: BenchProgressed) -> None:
        if message.token is not self._cancel:
            return  # from a run that has been cancelled
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

    def action_new_run(self) -> None:
        if self._cancel is None:
            self.app.push_screen(NewBenchRun(), self._chosen)

    def _chosen(self, choice: NewRun | None) -> None:
        if choice is not None:
            self._start(choice.ids, None, choice.quick)

    def action_rerun(self) -> None:
        from ...bench import runner

        if not self._loaded:
            self._pending_rerun = True
            return
        run = self.current
        if run is None:
            self.action_new_run()
            return
        reference = next((str(r["id"]) for r in run.rows if r.get("is_reference")), None)
        self._start(
            tuple(run.model_ids),
            reference,
            runner.Options(quick=True, reps=1, threads=run.threads or 1, ctx=run.context or 4096),
        )

    def _start(self, ids: tuple[str, ...], reference: str | None, options: Options | bool) -> None:
        if self._cancel is not None:
            return
        self._cancel = CancelToken()
        self._set_running(True)
        self.query_one("#bench-status", Label).update("starting benchmark…")
        self._bench(ids, reference, options, self._cancel)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """New run and re-run wait while a run is going (greyed in the footer, left out of the palette)."""
        if action in ("new_run", "rerun") and self._cancel is not None:
            return None
        return True

    def palette_callback(self, action: str) -> Callable[[], Any]:
        return lambda: self.run_action(action)

    # -- rendering ---------------------------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        if not running:
            self._cancel = None
        else:
            self.query_one("#bench-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#bench-progress-row").set_class(running, "-running")
        self.refresh_bindings()

    @property
    def current(self) -> Run | None:
        return self.runs[self.index] if self.runs else None

    def _show(self) -> None:
        from ...bench import report

        table = self.query_one("#bench-table", DataTable)
        table.clear(columns=True)
        run = self.current
        verdict = None if run is None else verdict_line(run)
        self.query_one("#bench-verdict", Static).update(verdict or "")
        self.query_one("#bench-verdict").set_class(verdict is not None, "-shown")
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
