"""Pull any catalog model: the catalog's variants with size, quant, memory fit and whether each is installed
(``inventory.listing``, as ``models list --all`` shows them); Enter pulls the highlighted one with a progress
bar, Esc stops the download (the part already fetched is kept, and Enter resumes it), Esc again closes.

The listing and the pull run in thread workers; the pull's progress is throttled as on the first-run screen.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, ProgressBar
from textual.worker import Worker

from ...units import human_size
from ...untrusted import clean, plain
from ..messages import DownloadProgressed
from ..workers import report_failure
from .first_run import throttled

HELP = "Enter: download  ·  Esc: close"
HELP_PULLING = "Esc: stop (what is fetched is kept; Enter resumes)"


class CatalogListed(Message):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows


class Pulled(Message):
    def __init__(self, model_id: str) -> None:
        super().__init__()
        self.model_id = model_id


class CatalogScreen(ModalScreen[bool]):
    """Dismissed with True when it installed something (the app then lists the models again)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stop_or_close", "Close", id="catalog.close")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.installed_any = False
        self.pulling: str | None = None
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        with Vertical(id="catalog"):
            yield Label("Models", classes="dialog-title")
            table: DataTable[Any] = DataTable(id="catalog-table", cursor_type="row", zebra_stripes=True)
            yield table
            yield ProgressBar(id="catalog-progress", show_eta=False)
            yield Label("", id="catalog-status", markup=False)  # model ids, file names, errors: data
            yield Label(HELP, classes="dialog-help", id="catalog-help")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Model", "Kind", "Quant", "Size", "Fit", "Status")
        table.loading = True
        self.query_one(ProgressBar).display = False
        self._list()

    @work(thread=True, exclusive=True, exit_on_error=False, group="model-list")
    def _list(self) -> None:
        from ... import config, inventory

        settings = config.load()
        rows = inventory.listing(settings, settings.runtime.context_size, show_all=True)
        self.post_message(CatalogListed(rows))

    def on_catalog_listed(self, message: CatalogListed) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.loading = False
        table.clear()
        self.rows = {}
        for row in message.rows:
            self.rows[row["id"]] = row
            status = {"available": "", "missing": "file missing"}.get(row["status"], row["status"])
            size = human_size(row["size_bytes"]) if row["size_bytes"] else "?"
            cells = (plain(row["id"]), plain(row["kind"]), plain(row["quant"]), size, plain(row["fit"]), plain(status))
            table.add_row(*cells, key=row["id"])  # catalog text is data: plain Text, never markup
        if message.rows:
            table.move_cursor(row=min(keep, len(message.rows) - 1))
        table.focus()

    @on(DataTable.RowSelected, "#catalog-table")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        model_id = str(event.row_key.value)
        row = self.rows.get(model_id)
        status = self.query_one("#catalog-status", Label)
        if self.pulling is not None:
            return
        if row is None or row["status"] == "installed":
            status.update(f"{clean(model_id, one_line=True)} is installed (Ctrl+O picks the chat model)")
            return
        self.pulling = model_id
        self._cancel.clear()
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(total=row["size_bytes"] or None, progress=0)
        status.update(f"downloading {clean(model_id, one_line=True)}…")
        self.query_one("#catalog-help", Label).update(HELP_PULLING)
        self._pull(model_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="download")
    def _pull(self, model_id: str) -> None:
        from ... import download

        download.pull(model_id, on_progress=throttled(self.post_message, self._cancel), cancel=self._cancel)
        self.post_message(Pulled(model_id))

    def on_download_progressed(self, message: DownloadProgressed) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#catalog-status", Label).update(clean(message.label, one_line=True))

    def on_pulled(self, message: Pulled) -> None:
        self.pulling = None
        self.installed_any = True
        self.query_one(ProgressBar).display = False
        self.query_one("#catalog-status", Label).update(f"installed {clean(message.model_id, one_line=True)}")
        self.query_one("#catalog-help", Label).update(HELP)
        self._list()

    def _pull_ended(self, error: str) -> None:
        model_id, self.pulling = self.pulling or "", None
        stopped = self._cancel.is_set()
        line = (
            f"stopped {clean(model_id, one_line=True)}: Enter resumes it"
            if stopped
            else f"download failed: {clean(error, one_line=True)}"
        )
        self.query_one("#catalog-status", Label).update(line)
        self.query_one("#catalog-help", Label).update(HELP)

    def action_stop_or_close(self) -> None:
        if self.pulling is not None:
            self._cancel.set()  # the pull stops after its current chunk; its partial file stays to resume
            return
        self.dismiss(self.installed_any)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        error = report_failure(self, event)
        if error is not None and event.worker.group == "download":
            self._pull_ended(error)
