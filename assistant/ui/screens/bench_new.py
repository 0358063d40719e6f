"""Start a benchmark run from the TUI: pick installed models, Quick or Full, then Start.

The dialog lists the store's models in a thread worker and, on Start, asks the domain's own ``runner.plan``
(also in a worker) whether the choice can run, so what it refuses (a speech and a language model in one run,
a model whose file is gone) is said here in the domain's one line, before the dialog closes. It returns what
to run; the bench screen runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, RadioButton, RadioSet, SelectionList
from textual.widgets.selection_list import Selection
from textual.worker import Worker, WorkerState

from ... import errors
from ...units import human_size
from ...untrusted import clean, plain

if TYPE_CHECKING:
    from ...store import Installed

KIND_NAMES = {"llm": "chat", "whisper": "speech"}


@dataclass(frozen=True)
class NewRun:
    """What the user chose: the model ids, in the listed order, and whether the run is ``--quick``."""

    ids: tuple[str, ...]
    quick: bool


class BenchModelsListed(Message):
    def __init__(self, models: list[Installed]) -> None:
        super().__init__()
        self.models = models


class BenchChoiceChecked(Message):
    """``runner.plan`` accepted the choice."""

    def __init__(self, choice: NewRun) -> None:
        super().__init__()
        self.choice = choice


class NewBenchRun(ModalScreen[NewRun | None]):
    """Returns the run to start, or None when cancelled."""

    DEFAULT_CSS = """
    NewBenchRun { align: center middle; background: $background 60%; }
    NewBenchRun #bench-new {
        width: 100%; max-width: 80; height: auto; max-height: 100%;
        border: round $border; background: $surface; padding: 0 1;
    }
    NewBenchRun #bench-new-title { text-style: bold; }
    NewBenchRun #bench-models { height: auto; max-height: 40vh; }
    NewBenchRun #bench-length { layout: horizontal; width: 100%; height: auto; border: none; }
    NewBenchRun #bench-new-status { color: $text-muted; height: auto; }
    NewBenchRun #bench-new-buttons { height: auto; align-horizontal: right; }
    NewBenchRun #bench-new-buttons Button { margin: 0 0 0 1; min-width: 10; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="bench-new.cancel")]
    AUTO_FOCUS = "#bench-models"

    def compose(self) -> ComposeResult:
        with Vertical(id="bench-new"):
            yield Label("New benchmark run: space selects", id="bench-new-title")
            yield SelectionList[str](id="bench-models")
            with RadioSet(id="bench-length"):
                yield RadioButton("Quick", value=True, id="bench-quick")
                yield RadioButton("Full", id="bench-full")
            yield Label("reading installed models…", id="bench-new-status", markup=False)
            with Horizontal(id="bench-new-buttons"):
                yield Button("Start", variant="primary", id="bench-start")
                yield Button("Cancel", id="bench-cancel")

    def on_mount(self) -> None:
        self._list()

    @work(thread=True, exclusive=True, exit_on_error=False, group="bench-models")
    def _list(self) -> None:
        from ...store import Store

        store = Store()
        try:
            self.post_message(BenchModelsListed(store.list()))
        finally:
            store.conn.close()

    @work(thread=True, exclusive=True, exit_on_error=False, group="bench-check")
    def _check(self, choice: NewRun) -> None:
        from ...bench import runner
        from ...store import Store

        store = Store()
        try:
            runner.plan(choice.ids, store=store)  # raises the domain's refusal, named
        finally:
            store.conn.close()
        self.post_message(BenchChoiceChecked(choice))

    def on_bench_models_listed(self, message: BenchModelsListed) -> None:
        models = self.query_one("#bench-models", SelectionList)
        for item in message.models:
            kind = KIND_NAMES.get(item.kind, item.kind)
            # ids come from the store (data): a Text prompt is never parsed as markup
            models.add_option(Selection(plain(f"{item.id}  · {kind} · {human_size(item.size_bytes)}"), item.id))
        if message.models and models.highlighted is None:
            models.highlighted = 0  # space selects at once (focused before the options arrived, none was)
        status = "" if message.models else "no models installed: run 'assistant models pull'"
        self._say(status)

    def on_bench_choice_checked(self, message: BenchChoiceChecked) -> None:
        self.dismiss(message.choice)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self._say(errors.one_line(event.worker.error, typed=True))

    @on(Button.Pressed, "#bench-start")
    def _start(self) -> None:
        models = self.query_one("#bench-models", SelectionList)
        chosen = set(models.selected)
        listed = (models.get_option_at_index(i).value for i in range(models.option_count))
        ids = tuple(i for i in listed if i in chosen)  # in the listed order, not the order they were ticked
        if not ids:
            self._say("choose one or more models (space selects)")
            return
        self._say("checking…")
        self._check(NewRun(ids, self.query_one("#bench-quick", RadioButton).value))

    @on(Button.Pressed, "#bench-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _say(self, text: str) -> None:
        self.query_one("#bench-new-status", Label).update(clean(text, one_line=True))
