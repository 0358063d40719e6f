"""``assistant bench ...`` and ``assistant models quantize``: make variants, measure them, keep the results.

``assistant bench ID...`` runs a benchmark (the group's default command, also reachable as ``bench run``);
``history``, ``compare``, ``export``, ``plot`` and ``rm`` work on stored runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..untrusted import escape
from ._common import emit_json, human_size, stderr_console
from .models import models_group
from .root import cli


def stdout_console() -> Any:
    """Tables are wide: when stdout is not a terminal, don't squeeze them into Rich's default 80 columns."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),  # model ids and stage names: data
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=False,
    )


# -- models quantize ---------------------------------------------------------------------------------------


@models_group.command("quantize")
@click.argument("model_id")
@click.option("--to", "targets", required=True, help="Target types, comma-separated: q8_0,q5_k_m,q4_k_m,q3_k_m,q2_k...")
@click.option("--threads", type=click.IntRange(1, 512), help="Threads for quantizing (default: physical cores).")
@click.option("--force", is_flag=True, help="Replace target variants that are already installed.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def quantize_cmd(model_id: str, targets: str, threads: int | None, force: bool, as_json: bool) -> None:
    """Make smaller variants of an installed model with llama.cpp's quantizer.

    Each result is installed as FAMILY:TYPE (e.g. smollm2-135m-instruct:q4_k_m) with its provenance.
    From an already-quantized source the result can't be better than the source.
    """
    from .. import quantize
    from ..store import Store

    store = Store()
    checked = quantize.plan(model_id, targets, force=force, store=store)
    note = checked.note()
    err = stderr_console()
    if note:
        err.print(f"note: {escape(note)}", soft_wrap=True)
    with _progress() as progress:
        tasks: dict[str, Any] = {}

        def on_start(target_id: str) -> None:
            tasks[target_id] = progress.add_task(f"quantize {target_id}", total=None)

        def on_progress(target_id: str, done: int, total: int) -> None:
            progress.update(tasks[target_id], completed=done, total=total)

        results = quantize.quantize(
            checked.source.id,
            [tag for tag, _ in checked.targets],
            threads=threads,
            force=force,
            store=store,
            on_start=on_start,
            on_progress=on_progress,
        )
    if as_json:
        emit_json([{**r.to_json(), "note": note} for r in results])
        return
    out = stdout_console()
    for r in results:
        out.print(
            f"[green]✓[/] {escape(r.installed.id)}  {human_size(r.installed.size_bytes)}  ({escape(r.installed.quant)},"
            f" from {escape(r.source_quant)} in {r.seconds:.1f} s)"
        )
        if fallback := r.fallback_note():
            out.print(f"  {escape(fallback)}")
    ids = " ".join(r.installed.id for r in results)
    out.print(escape(f"benchmark them: assistant bench {checked.source.id} {ids}"))


# -- bench -------------------------------------------------------------------------------------------------


class _BenchGroup(click.Group):
    """``bench ID...`` is ``bench run ID...``: anything that isn't a subcommand goes to ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group("bench", cls=_BenchGroup)
def bench_group() -> None:
    """Benchmark model variants side by side (speed, memory, quality, accuracy, PER).

    \b
    assistant bench MODEL... [--quick] [--reference ID]   run a benchmark
    assistant bench history | compare | export | plot | rm   stored runs
    """


@bench_group.command("run")
@click.argument("ids", nargs=-1, required=True, metavar="MODEL...")
@click.option("--quick", is_flag=True, help="One repetition and a short quality window (fast, noisier).")
@click.option(
    "--reference",
    "-r",
    "reference",
    help="The variant others are compared with (default: the family's source variant; speech: highest precision).",
)
@click.option("--threads", "threads", help="Threads, or a list to sweep: 1,2 (default: physical cores).")
@click.option("--ctx", type=click.IntRange(512, 1_048_576), help="Context size (default: the configured one).")
@click.option("--reps", type=click.IntRange(1, 100), help="Repetitions of each timing (default 3, --quick 1).")
@click.option("--kv-type", "kv_type", help="KV cache type, or a list to sweep: f16,q8_0 (default f16).")
@click.option("--flash-attn", "flash_attn", help="Flash attention off / on / auto, or a list: off,on (default auto).")
@click.option("--batch", "batch", help="Prompt batch size, or a list to sweep: 256,512 (default 512).")
@click.option(
    "--tasks",
    "tasks_file",
    type=click.Path(dir_okay=False),
    help="Your own tasks (JSONL) instead of the built-in ones.",
)
@click.option("--text", "text_file", type=click.Path(dir_okay=False), help="Your own text for perplexity and KLD.")
@click.option("--max-kld", type=click.FloatRange(0), help="Verdict budget: no variant with a higher mean KLD.")
@click.option(
    "--max-accuracy-drop", type=click.FloatRange(0), help="Verdict budget: accuracy points a variant may lose."
)
@click.option("--max-memory", type=click.FloatRange(0), help="Verdict budget: peak memory in MiB.")
@click.option("--min-tps", type=click.FloatRange(0), help="Verdict budget: generation speed in tokens/s.")
@click.option(
    "--speculative",
    is_flag=True,
    help="Also time prompt-lookup decoding against plain decoding on grounded prompts (the lookup column).",
)
@click.option("--no-save", is_flag=True, help="Don't store the run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def run_cmd(
    ids: tuple[str, ...],
    quick: bool,
    reference: str | None,
    threads: str | None,
    ctx: int | None,
    reps: int | None,
    kv_type: str | None,
    flash_attn: str | None,
    batch: str | None,
    tasks_file: str | None,
    text_file: str | None,
    max_kld: float | None,
    max_accuracy_drop: float | None,
    max_memory: float | None,
    min_tps: float | None,
    speculative: bool,
    no_save: bool,
    as_json: bool,
) -> None:
    """Benchmark installed variants: speed (pp512, tg128, TTFT), peak memory, quality vs a reference
    (perplexity ratio, KL divergence, top-1 agreement), task accuracy, and the PER score, each with its
    95 % interval, then the verdict: the variant to use on this machine.

    MODEL is an installed id, or a family name for all its installed variants. Settings given as lists
    (--threads 1,2 --kv-type f16,q8_0) measure every combination, one row each.
    """
    from .. import config
    from ..bench import report, results, runner
    from ..bench.verdict import Budget

    settings = config.load()
    planned = runner.plan(ids, reference)  # before the progress bar: a refusal stays one line
    sweep = _sweep(threads=threads, kv_type=kv_type, flash_attn=flash_attn, batch=batch)
    options = runner.Options(
        quick=quick,
        reps=reps,
        threads=sweep["threads"][0] if "threads" in sweep else settings.threads(),
        ctx=ctx or settings.runtime.context_size,
        tasks_file=tasks_file,
        text_file=text_file,
        sweep=sweep,
        speculative=speculative,
        budget=Budget(max_kld=max_kld, max_accuracy_drop=max_accuracy_drop, max_memory=max_memory, min_tps=min_tps),
    )
    with _progress() as progress:
        tasks: dict[str, Any] = {}

        def on_event(model_id: str, event: dict[str, Any]) -> None:
            kind = event.get("event")
            if kind == "start":
                tasks[model_id] = progress.add_task(f"{model_id}: starting", total=None)
            elif kind == "plan":
                progress.update(tasks[model_id], total=event["units"])
            elif kind == "advance":
                progress.update(tasks[model_id], advance=1, description=f"{model_id}: {event['stage']}")
            elif kind == "done":
                progress.update(tasks[model_id], description=f"{model_id}: done")

        run = runner.run(planned, options=options, progress=on_event)
    if not no_save:
        results.save(run)
    if as_json:
        emit_json(run.to_json())
        return
    stdout_console().print(report.rich_table(run))
    if run.verdict:
        stdout_console().print(report.render_verdict(run.verdict))
    if run.id is not None:
        stderr_console().print(f"saved as run {run.id}: assistant bench plot {run.id}")


_SWEEP_CHOICES: dict[str, tuple[str, ...]] = {
    "kv_type": ("f16", "q8_0", "q4_0", "f32"),
    "flash_attn": ("off", "on", "auto"),
}


def _sweep(**given: str | None) -> dict[str, list[Any]]:
    """``--threads 1,2``-style lists, checked: numbers where numbers go, known names elsewhere, no repeats."""
    from ..errors import AssistantError

    out: dict[str, list[Any]] = {}
    for key, text in given.items():
        if text is None:
            continue
        flag = "--" + key.replace("_", "-")
        values = [v.strip().lower() for v in text.split(",")]
        if not all(values) or len(set(values)) != len(values):
            raise AssistantError(f"{flag} {text!r}: give distinct values separated by commas", f"e.g. {flag} 1,2")
        if key in _SWEEP_CHOICES:
            bad = [v for v in values if v not in _SWEEP_CHOICES[key]]
            if bad:
                raise AssistantError(
                    f"{flag}: unknown value {bad[0]!r}", f"choose from {', '.join(_SWEEP_CHOICES[key])}"
                )
            out[key] = values
            continue
        if not all(v.isdigit() and 1 <= int(v) <= (512 if key == "threads" else 8192) for v in values):
            raise AssistantError(
                f"{flag} {text!r}: give whole numbers", f"e.g. {flag} {'1,2' if key == 'threads' else '256,512'}"
            )
        out[key] = [int(v) for v in values]
    return out


_MAX_RUN_ID = 2**63 - 1  # SQLite's INTEGER; a bigger number is no run (not an OverflowError)
# "-1" (the run before last...) is a run reference, not an unknown option
_RUN_ARGS = {"ignore_unknown_options": True}


def _resolve(ref: str) -> int:
    from ..bench import results
    from ..errors import AssistantError

    text = ref.strip().lstrip("-")
    if text.isdigit() and int(text) > _MAX_RUN_ID:
        raise AssistantError(f"no benchmark run {ref.strip()}", "see 'assistant bench history'")
    if ref.strip() in ("-0", "-") or (ref.strip().startswith("--") and text.isdigit()):
        raise AssistantError(f"invalid run {ref!r}", "give a run number from 'assistant bench history', or 'last'")
    return results.resolve(ref)


def _runs(refs: tuple[str, ...]) -> list[Any]:
    from ..bench import results

    return _warned([results.get(_resolve(r)) for r in refs])


def _warned(runs: list[Any]) -> list[Any]:
    """Say which stored rows could not be read (they were skipped), then go on with the rest."""
    for run in runs:
        for warning in run.warnings:
            click.echo(f"warning: {warning}", err=True)
    return runs


@bench_group.command("history")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def history_cmd(limit: int, as_json: bool) -> None:
    """Stored runs, newest first."""
    from ..bench import report, results

    runs = _warned(results.history(limit))
    if as_json:
        emit_json([r.to_json() for r in runs])
        return
    if not runs:
        stderr_console().print("no benchmark runs yet: assistant bench MODEL... --quick")
        return
    stdout_console().print(report.history_table(runs))


@bench_group.command("compare", context_settings=_RUN_ARGS)
@click.argument("runs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def compare_cmd(runs: tuple[str, ...], as_json: bool) -> None:
    """Put stored runs side by side (RUN: a number from history, or 'last'); says what differs between them."""
    from ..bench import fingerprint, report
    from ..errors import AssistantError

    loaded = _runs(runs)
    if len({r.kind for r in loaded}) > 1:
        raise AssistantError("those runs measured different kinds of model", "compare LLM runs with LLM runs")
    if as_json:
        emit_json(
            {
                "runs": [r.id for r in loaded],
                "differences": {
                    str(o.id): fingerprint.differences(loaded[0].fingerprint, o.fingerprint) for o in loaded[1:]
                },
                "rows": report.compare_rows(loaded),
            }
        )
        return
    stdout_console().print(report.compare_table(loaded))


@bench_group.command("export", context_settings=_RUN_ARGS)
@click.argument("run_ref", metavar="RUN")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "md"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def export_cmd(run_ref: str, fmt: str, output: Path | None) -> None:
    """Export a stored run as CSV, JSON or a Markdown table."""
    from ..bench import report

    text = report.export(_runs((run_ref,))[0], fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    _write(output, text)
    stderr_console().print(f"wrote {escape(output)}")


def _write(path: Path, text: str) -> None:
    from .. import paths

    paths.write_text_atomic(path, text)


@bench_group.command("plot", context_settings=_RUN_ARGS)
@click.argument("run_ref", metavar="RUN", default="last")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Also write a PNG (needs matplotlib).")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), help="Also write an SVG.")
@click.option("--width", type=click.IntRange(40, 400), help="Plot width in columns (default: terminal width).")
def plot_cmd(run_ref: str, png: Path | None, svg: Path | None, width: int | None) -> None:
    """Quality vs speed vs size of a stored run, in the terminal (and as PNG/SVG on request)."""
    import shutil

    from ..bench import plot

    if png is not None:
        plot.check_png(png)
    run = _runs((run_ref,))[0]
    columns = width or min(shutil.get_terminal_size((100, 24)).columns, 120)
    click.echo(plot.terminal(run, width=columns, height=24, color=sys.stdout.isatty()))
    if svg is not None:
        _write(svg, plot.svg(run))
        stderr_console().print(f"wrote {escape(svg)}")
    if png is not None:
        plot.png(run, png)
        stderr_console().print(f"wrote {escape(png)}")


@bench_group.command("rm", context_settings=_RUN_ARGS)
@click.argument("runs", nargs=-1, required=True)
def rm_cmd(runs: tuple[str, ...]) -> None:
    """Delete stored runs."""
    from ..bench import results

    for ref in runs:
        run_id = _resolve(ref)
        results.delete(run_id)
        stderr_console().print(f"deleted run {run_id}")


# -- the child-process entry (see assistant/bench/worker.py) ----------------------------------------------


@cli.command("_worker", hidden=True)
@click.argument("name")
@click.argument("spec")
def worker_cmd(name: str, spec: str) -> None:
    """Internal: run one measurement or quantization in this (child) process."""
    from ..bench import worker

    sys.exit(worker.main(name, spec))
