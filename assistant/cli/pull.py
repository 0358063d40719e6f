"""``assistant models pull`` and ``assistant models add``: the only commands that use the network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..untrusted import clean, escape
from ._common import emit_json, human_size, stderr_console
from .models import models_group

if TYPE_CHECKING:
    from ..catalog import Variant

_ENDPOINT_HELP = (
    "Hugging Face hub URL (default: config models.hub_endpoint, $HF_ENDPOINT, huggingface.co)."
    " $HF_TOKEN is only ever sent to the configured hub."
)


@models_group.command("pull")
@click.argument("model_ids", nargs=-1, metavar="ID...")
@click.option("--starter", is_flag=True, help="Also pull the starter models that are not installed yet.")
@click.option("--endpoint", metavar="URL", help=_ENDPOINT_HELP)
@click.option("--force", is_flag=True, help="Download again even if installed.")
@click.option("--json", "as_json", is_flag=True, help="Print the installed models as JSON.")
def pull_command(model_ids: tuple[str, ...], starter: bool, endpoint: str | None, force: bool, as_json: bool) -> None:
    """Download models from the catalog, verify their checksums and install them.

    Downloads resume: run the same command again after an interruption.
    """
    from .. import catalog, download
    from ..store import Store

    if not model_ids and not starter:
        raise click.UsageError("give model ids to pull, or --starter")
    cat = catalog.default()
    store = Store()
    wanted: list[Variant] = [cat.get(model_id) for model_id in model_ids]  # unknown ids fail before any download
    if starter:
        wanted += [v for v in cat.starters() if force or not _installed(store, v.id)]
    wanted = list({v.id: v for v in wanted}.values())
    err = stderr_console()
    if starter and not wanted:
        err.print("all starter models are installed", soft_wrap=True)

    results: list[Any] = []
    for variant in wanted:
        existing = store.get(variant.id)
        if existing is not None and existing.present and not force:
            err.print(f"{escape(variant.id)} is already installed (use --force to pull it again)", soft_wrap=True)
            results.append(existing)
            continue
        _print_fit(err, variant)
        with _ProgressBar(err, variant.id) as bar:
            item = download.pull(variant, store=store, endpoint=endpoint, on_progress=bar.update, force=force)
        results.append(item)
        if not as_json:
            click.echo(clean(f"installed {item.id}  {human_size(item.size_bytes)}  {item.path}"))
    if as_json:
        emit_json([item.to_json() for item in results])


@models_group.command("add")
@click.argument("url")
@click.option("--id", "model_id", metavar="FAMILY:TAG", help="Id for the new entry (default: from the file name).")
@click.option("--endpoint", metavar="URL", help=_ENDPOINT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the new catalog entry as JSON.")
def add_command(url: str, model_id: str | None, endpoint: str | None, as_json: bool) -> None:
    """Add a GGUF file on the Hugging Face hub to your catalog (then pull it).

    URL is hf://owner/repo/path/file.gguf or a huggingface.co .../blob/... or .../resolve/... link.
    A link to another host than the configured hub keeps that host in the entry, so the pull goes there.
    """
    from .. import download, paths

    variant = download.add_hub_file(url, model_id, endpoint=endpoint)
    data = {
        "id": variant.id,
        "file": variant.entry.file,
        "size": variant.size,
        "sha256": variant.entry.sha256,
        "sources": [s.describe() for s in variant.entry.sources],
        "catalog": str(paths.user_catalog_file()),
    }
    if as_json:
        emit_json(data)
        return
    click.echo(clean(f"added {variant.id} ({human_size(variant.size)}) to {data['catalog']}"))
    click.echo(clean(f"pull it with: assistant models pull {variant.id}"))


def _installed(store: Any, model_id: str) -> bool:
    item = store.get(model_id)
    return item is not None and item.present


def _print_fit(console: Any, variant: Variant) -> None:
    """Before downloading: will it fit in memory? Only the catalog size is known yet."""
    from .. import fit

    if not variant.size:
        return
    estimate = fit.estimate_from_size(variant.size, variant.kind)
    available = fit.available_bytes()
    verdict = fit.verdict(estimate.total, available)
    style = {"fits": "green", "tight": "yellow"}.get(verdict, "red")
    console.print(
        f"{escape(variant.id)}: {human_size(variant.size)} download, needs ~{human_size(estimate.total)} of memory: "
        f"[{style}]{verdict}[/] ({human_size(available)} available)",
        soft_wrap=True,
    )


class _ProgressBar:
    """A Rich progress bar (bytes, speed, ETA) on stderr; silent when stderr is not a terminal."""

    def __init__(self, console: Any, name: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.name = name
        self.label = ""
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),  # a model id and a phase (file names): data
            BarColumn(bar_width=24),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
            transient=True,
        )
        self.task = self.progress.add_task(name, total=None)

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, done: int, total: int | None, label: str) -> None:
        if label != self.label:
            # a new phase (resume check, download, extraction): restart the speed estimate
            self.label = label
            self.progress.reset(self.task, total=total, completed=done, description=f"{self.name} {label}")
        else:
            self.progress.update(self.task, total=total, completed=done)
