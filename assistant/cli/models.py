"""``assistant models ...``: list, inspect, import, remove and choose models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..untrusted import clean, plain
from ._common import emit_json, human_size, stdout_console
from .root import cli

if TYPE_CHECKING:
    from ..store import Installed


@cli.group("models")
def models_group() -> None:
    """Get, inspect and choose models (pull, list, info, import, rm, use, verify, du)."""


def _context(ctx_size: int | None) -> int:
    from .. import config

    return ctx_size or config.load().runtime.context_size


@models_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list every catalog variant not installed.")
@click.option("--installed", "only_installed", is_flag=True, help="Only installed models.")
@click.option("--ctx", "ctx_size", type=click.IntRange(256, 1_048_576), help="Context size for the fit verdict.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_models(show_all: bool, only_installed: bool, ctx_size: int | None, as_json: bool) -> None:
    """Installed models and what the catalog offers, with size, quant and memory fit."""
    from .. import config, inventory

    settings = config.load()
    n_ctx = ctx_size or settings.runtime.context_size
    rows = inventory.listing(settings, n_ctx, show_all=show_all, only_installed=only_installed)
    if as_json:
        emit_json({"context": n_ctx, "models": rows})
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "KIND", "QUANT", "SIZE", "FIT", "STATUS"):
        table.add_column(column, justify="right" if column == "SIZE" else "left")
    styles = {"fits": "green", "tight": "yellow", "won't fit": "red"}
    for row in rows:
        mark = " *" if row["default"] and row["status"] == "installed" else ""
        fit_text = f"[{styles.get(row['fit'], 'dim')}]{row['fit']}[/]"
        status = row["status"] if row["status"] != "missing" else "[red]file missing[/]"
        table.add_row(
            plain(row["id"] + mark),
            plain(row["kind"]),
            plain(row["quant"]),
            human_size(row["size_bytes"]),
            fit_text,
            status,
        )
    console = stdout_console()
    console.print(table)
    console.print(f"[dim]fit at {n_ctx}-token context; * = default. 'assistant models pull ID' to get one.[/]")


@models_group.command("info")
@click.argument("target")
@click.option("--ctx", "ctx_size", type=click.IntRange(256, 1_048_576), help="Context size for the memory estimate.")
@click.option("--verbose", "-v", is_flag=True, help="Show the memory estimate's parts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(target: str, ctx_size: int | None, verbose: bool, as_json: bool) -> None:
    """Facts about a model (an id or a path), read from its GGUF header without loading weights."""
    from .. import catalog, fit, gguf
    from ..errors import AssistantError
    from ..store import Store, is_whisper_dir

    n_ctx = _context(ctx_size)
    path = Path(target).expanduser()
    data: dict[str, Any]
    looks_like_path = "/" in target or target.endswith(".gguf") or path.exists()
    if looks_like_path:
        data = _whisper_info(path) if is_whisper_dir(path) else gguf.read(path).summary()
        data["id"] = None
    else:
        store = Store()
        model_id = store.resolve(target)
        item = store.get(model_id)
        if item is not None and item.present:
            data = _whisper_info(item.path) if item.kind == "whisper" else gguf.read(item.path).summary()
            data.update(id=item.id, source=item.source, provenance=item.provenance, installed=True)
            if item.kind == "llm":
                data.update(_drafts(item, store))
        else:
            variant = catalog.default().find(model_id)
            if variant is None:
                raise AssistantError(
                    f"{target}: neither an installed model, a catalog id, nor a file", "check the name"
                )
            data = {
                "id": variant.id,
                "kind": variant.kind,
                "installed": False,
                "quant": variant.quant,
                "file_size": variant.size,
                "license": variant.license,
                "description": variant.description,
                "sources": [s.describe() for s in variant.entry.sources],
            }
    if data.get("kind") == "whisper":
        estimate = fit.estimate_whisper(int(data.get("file_size") or 0))
    elif "layers" in data:
        estimate = fit.estimate_llm(data, n_ctx)
    else:
        estimate = fit.estimate_from_size(int(data.get("file_size") or 0), str(data.get("kind", "llm")))
    data["memory"] = {**estimate.to_json(), "context": n_ctx, "available": fit.available_bytes()}
    data["fit"] = fit.verdict(estimate.total)
    if as_json:
        emit_json(data)
        return
    _print_info(data, verbose)


def _drafts(item: Any, store: Any) -> dict[str, list[str]]:
    """The installed models with ``item``'s vocabulary: the smaller can draft for it (speculative decoding,
    ``runtime.speculative = "draft:ID"``), it can draft for the larger."""
    from .. import drafts

    found = drafts.compatible(item, store.list("llm"))
    return {
        "drafted_by": [m.id for m in found if m.size_bytes < item.size_bytes],
        "drafts_for": [m.id for m in found if m.size_bytes >= item.size_bytes],
    }


def _whisper_info(path: Path) -> dict[str, Any]:
    import json

    from ..store import dir_size

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    return {
        "path": str(path),
        "kind": "whisper",
        "format": "CTranslate2",
        "architecture": "whisper",
        "multilingual": not path.name.endswith(".en") and "tiny.en" not in str(path),
        "file_size": dir_size(path),
        "files": sorted(p.name for p in path.iterdir()),
        "alignment_heads": len(config.get("alignment_heads", [])),
    }


def _print_info(data: dict[str, Any], verbose: bool) -> None:
    from rich.table import Table

    labels = [
        ("id", "id"),
        ("path", "path"),
        ("format", "format"),
        ("architecture", "architecture"),
        ("name", "name"),
        ("parameters", "parameters"),
        ("quant", "quant"),
        ("context_length", "context length"),
        ("layers", "layers"),
        ("heads", "attention heads"),
        ("kv_heads", "KV heads"),
        ("embedding_length", "embedding length"),
        ("vocab_size", "vocabulary"),
        ("chat_template", "chat template"),
        ("license", "license"),
        ("file_size", "file size"),
        ("source", "source"),
        ("drafted_by", "drafted by"),
        ("drafts_for", "drafts for"),
        ("sources", "sources"),
        ("description", "description"),
    ]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, label in labels:
        if data.get(key) is None or data[key] == []:
            continue
        value = data[key]
        if key == "parameters":
            value = f"{value / 1e6:.1f} M" if value < 1e9 else f"{value / 1e9:.2f} B"
        elif key == "file_size":
            value = human_size(value)
        elif key == "chat_template":
            value = "yes" if value else "no (base model: completion mode)"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        table.add_row(label, plain(value))  # GGUF metadata and catalog text: data, never markup
    memory = data["memory"]
    styles = {"fits": "green", "tight": "yellow", "won't fit": "red"}
    table.add_row(
        "memory",
        f"~{human_size(memory['total'])} at {memory['context']} tokens of context: "
        f"[{styles.get(data['fit'], '')}]{data['fit']}[/] ({human_size(memory['available'])} available)",
    )
    if verbose:
        for part in ("weights", "kv_cache", "compute", "overhead"):
            table.add_row(f"  {part.replace('_', ' ')}", human_size(memory[part]))
    stdout_console().print(table)


@models_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--id", "model_id", help="Id to register it under (default: from the file name and quant).")
@click.option("--copy", is_flag=True, help="Copy it into the model store instead of using it in place.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def import_model(path: Path, model_id: str | None, copy: bool, as_json: bool) -> None:
    """Register an existing GGUF file (or a CTranslate2 whisper folder)."""
    from ..store import import_path

    item = import_path(path, model_id=model_id, copy=copy)
    if as_json:
        emit_json(item.to_json())
        return
    where = "copied into the store" if copy else "used in place"
    click.echo(clean(f"imported {item.id} ({human_size(item.size_bytes)}, {where}): {item.path}"))


@models_group.command("rm")
@click.argument("model_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def remove(model_ids: tuple[str, ...], as_json: bool) -> None:
    """Remove installed models (files the store owns are deleted; imported files are left alone)."""
    from ..store import Store

    store = Store()
    removed = []
    for model_id in model_ids:
        item = store.remove(store.resolve(model_id))
        removed.append({**item.to_json(), "deleted": item.deleted})
        if not as_json:
            if item.deleted:
                what = "deleted"
            elif item.managed:
                what = "forgotten (its file is outside this home's models folder, left in place)"
            else:
                what = "forgotten (file left in place)"
            click.echo(clean(f"removed {item.id}: {what}"))
    if as_json:
        emit_json(removed)


@models_group.command("use")
@click.argument("model_id")
def use(model_id: str) -> None:
    """Make an installed model the default chat (LLM) or speech (whisper) model."""
    from .. import paths
    from ..errors import AssistantError
    from ..store import Store

    item = Store().require(model_id)
    key = "chat" if item.kind == "llm" else "speech"
    import tomlkit

    target = paths.config_file()
    try:
        document = tomlkit.parse(target.read_text(encoding="utf-8")) if target.exists() else tomlkit.document()
    except Exception as exc:  # tomlkit raises its own ParseError family
        raise AssistantError(f"{target}: not valid TOML: {exc}", "fix or delete the file") from None
    section = document.setdefault("models", tomlkit.table())
    section[key] = item.id
    paths.ensure(target.parent)
    paths.write_text_atomic(target, tomlkit.dumps(document))
    click.echo(clean(f"default {'chat' if key == 'chat' else 'speech'} model: {item.id}"))


@models_group.command("verify")
@click.argument("model_ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(model_ids: tuple[str, ...], as_json: bool) -> None:
    """Re-hash installed models and compare with the checksums recorded at install."""
    from ..store import Store

    store = Store()
    items = [store.get(store.resolve(m)) for m in model_ids] if model_ids else store.list()
    results = []
    failed = False
    for model_id, item in zip(model_ids or [i.id for i in items if i], items, strict=False):
        if item is None:
            results.append({"id": model_id, "status": "not installed"})
            failed = True
            continue
        status, reason = _verify_one(item)
        failed |= status != "ok"
        results.append(
            {"id": item.id, "status": status, "path": str(item.path), **({"reason": reason} if reason else {})}
        )
        if not as_json:
            from ..untrusted import plain

            colour = "green" if status == "ok" else "red"
            line = plain(f"{status:>10}  {item.id}  {item.path}" + (f"  ({reason})" if reason else ""))
            line.stylize(colour, 0, 10)
            stdout_console().print(line)
    if as_json:
        emit_json(results)
    if failed:
        raise click.exceptions.Exit(1)


def _verify_one(item: Installed) -> tuple[str, str | None]:
    """``ok`` / ``missing`` / ``corrupt`` / ``unreadable`` (with why): one file failing never stops the rest."""
    from .. import catalog
    from ..store import hash_path

    if not item.present:
        return "missing", None
    try:
        digest = hash_path(item.path)
    except OSError as exc:
        return "unreadable", exc.strerror or type(exc).__name__
    expected = item.sha256
    variant = catalog.default().find(item.id)
    if variant is not None and variant.entry.sha256 and item.source != "import":
        expected = variant.entry.sha256
    return ("ok" if expected is None or digest == expected else "corrupt"), None


@models_group.command("du")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def disk_usage(as_json: bool) -> None:
    """Disk used by models, unfinished downloads and the wheel cache."""
    from .. import paths
    from ..store import Store, dir_size, leftovers

    models: list[dict[str, Any]] = [
        {"id": i.id, "bytes": i.size_bytes if i.present else 0, "managed": i.managed, "path": str(i.path)}
        for i in Store().list()
    ]
    found = leftovers()
    extra = {
        "partial_downloads": dir_size(paths.partial_dir()) if paths.partial_dir().exists() else 0,
        "wheel_cache": dir_size(paths.wheel_cache_dir()) if paths.wheel_cache_dir().exists() else 0,
    }
    # leftovers inside partial/ are already counted in partial_downloads
    outside = sum(f.size_bytes for f in found if not f.path.is_relative_to(paths.partial_dir()))
    total = sum(m["bytes"] for m in models if m["managed"]) + sum(extra.values()) + outside
    if as_json:
        leftover_rows = [f.to_json() for f in found]
        emit_json({"models": models, **extra, "leftovers": leftover_rows, "total_owned_bytes": total})
        return
    for m in models:
        note = "" if m["managed"] else "  (imported, not counted)"
        click.echo(clean(f"{human_size(m['bytes']):>10}  {m['id']}{note}"))
    click.echo(f"{human_size(extra['partial_downloads']):>10}  unfinished downloads")
    for f in found:
        click.echo(clean(f"{human_size(f.size_bytes):>10}  leftover: {f.what}: {f.path}"))
    if found:
        click.echo(f"{'':>10}  'assistant doctor --clean' removes the leftovers")
    click.echo(clean(f"{human_size(extra['wheel_cache']):>10}  wheel cache ({paths.wheel_cache_dir()})"))
    click.echo(f"{human_size(total):>10}  total owned by assistant")
