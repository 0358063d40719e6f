"""Pick the chat model: installed models with their size, quantization, whether they fit in memory, and the
installed models that can draft for them (speculative decoding, ``runtime.speculative = "draft:ID"``).

The rows come from ``inventory.installed`` (the store and the free memory), so they are computed in a thread
worker; the table fills in when they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label
from textual.worker import Worker

from ...units import human_size
from ...untrusted import plain
from ..messages import ModelsListed
from ..workers import report_failure


@dataclass
class ModelRow:
    id: str
    size_bytes: int
    quant: str
    verdict: str  # fits / tight / won't fit / unreadable / missing
    need_bytes: int | None
    current: bool = False
    drafted_by: tuple[str, ...] = ()  # smaller installed models with its vocabulary (``drafts.compatible``)


def installed_rows(current: str | None, context_size: int, batch_size: int) -> list[ModelRow]:
    """Blocking: reads the store (``inventory.installed``, which ``models list`` shows too) and the models'
    vocabularies (``drafts``). Call from a worker."""
    from ... import drafts
    from ...inventory import installed

    fitted = installed(context_size, batch_size, kind="llm")
    items = [f.item for f in fitted]
    return [
        ModelRow(
            f.item.id,
            f.item.size_bytes,
            f.quant,
            f.verdict,
            f.need_bytes,
            f.item.id == current,
            tuple(m.id for m in drafts.compatible(f.item, items) if m.size_bytes < f.item.size_bytes),
        )
        for f in fitted
    ]


def _short(model_id: str, of: str) -> str:
    """A draft's id as the row shows it: its variant alone when it is of the row's family."""
    family, _, variant = model_id.partition(":")
    return variant if variant and family == of.partition(":")[0] else model_id


class ModelPicker(ModalScreen[str | None]):
    """Returns the chosen model id, or None when dismissed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_picker", "Close", id="picker.close")]

    def __init__(self, current: str | None, context_size: int, batch_size: int) -> None:
        super().__init__()
        self.current = current
        self.context_size = context_size
        self.batch_size = batch_size

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("Choose a model", classes="dialog-title")
            table: DataTable[str] = DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
            yield table
            yield Label("Enter: use  ·  Esc: close", classes="dialog-help", id="picker-help")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Model", "Size", "Quant", "Fit", "Drafted by")
        table.loading = True
        self._list_models()

    @work(thread=True, exclusive=True, exit_on_error=False, group="model-list")
    def _list_models(self) -> None:
        self.post_message(ModelsListed(installed_rows(self.current, self.context_size, self.batch_size)))

    def on_models_listed(self, message: ModelsListed) -> None:
        table = self.query_one(DataTable)
        table.loading = False
        table.clear()
        for row in message.rows:
            marker = "● " if row.current else "  "
            fit_text = row.verdict if row.need_bytes is None else f"{row.verdict} ({human_size(row.need_bytes)})"
            # DataTable parses str cells as markup: ids and quants from the store are data
            drafts = plain(", ".join(_short(d, row.id) for d in row.drafted_by) or "–")
            cells = (plain(marker + row.id), human_size(row.size_bytes), plain(row.quant), plain(fit_text), drafts)
            table.add_row(*cells, key=row.id)
        if not message.rows:
            self.query_one("#picker-help", Label).update("No chat models installed: run 'assistant models pull'.")
        table.focus()

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)

    def action_dismiss_picker(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker state messages do not bubble: hand them to the one failure report.
        report_failure(self, event)
