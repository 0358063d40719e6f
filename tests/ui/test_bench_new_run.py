"""Starting a benchmark run from the bench screen: the new-run dialog over this test's store, and a scripted
runner in place of ``runner.run`` (the real one, with a real model, is the slow test at the end)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from textual.app import App
from textual.binding import Binding
from textual.command import CommandPalette
from textual.widgets import Button, DataTable, Label, OptionList, ProgressBar, SelectionList

from assistant import errors, paths
from assistant.bench import fingerprint, results, runner
from assistant.bench.results import Run
from assistant.store import Installed, Store
from assistant.ui.screens.bench_new import NewBenchRun
from assistant.ui.screens.bench_screen import BenchScreen

from conftest import SMOL
from helpers.ui import wait_until

LLMS = ("fam:q2_k", "fam:q8_0")
SPEECH = "whisper-fake:int8"


def install(*ids: str, kind: str = "llm") -> None:
    """Rows in this test's store, each with a small file so the store counts it as present."""
    store = Store()
    for n, model_id in enumerate(ids):
        path = paths.ensure(paths.models_dir()) / f"{model_id.replace(':', '-')}.bin"
        path.write_bytes(b"x" * (1000 + n))
        store.add(Installed(model_id, kind, path, True, 90_000_000 + n, None, "test", installed_at=1.0))
    store.conn.close()


class ScriptedRunner:
    """Stands in for ``runner.run``: each variant starts, plans three steps and reports them; it waits at
    ``hold`` (a variant and a stage) until ``release()``, and stops with ``Cancelled`` if the run is cancelled."""

    def __init__(self, hold: tuple[str, str] | None = None) -> None:
        self.hold = hold
        self.holding = threading.Event()
        self._go = threading.Event()
        self.options: runner.Options | None = None

    def release(self) -> None:
        self._go.set()

    def __call__(self, planned: runner.Plan, *, options: runner.Options, progress: Any, cancel: Any) -> Run:
        self.options = options
        rows = []
        for model_id in planned.ids:
            progress(model_id, {"event": "start"})
            progress(model_id, {"event": "plan", "units": 3})
            for stage in ("load", "speed", "quality"):
                progress(model_id, {"event": "advance", "stage": stage})
                if (model_id, stage) == self.hold:
                    self.holding.set()
                    while not self._go.wait(0.02):
                        if cancel.cancelled:
                            raise errors.Cancelled()
            progress(model_id, {"event": "done"})
            rows.append({"id": model_id, "reference": planned.ids[0], "is_reference": model_id == planned.ids[0],
                         "size_bytes": 90_000_000, "tg_tps": 80.0, "pp_tps": 500.0, "ttft_ms": 50.0,
                         "peak_rss_mb": 200.0, "top1_agreement": 0.9, "per": 1.0})  # fmt: skip
        return Run(kind=planned.kind, rows=rows, fingerprint=fingerprint.collect(1, 4096), quick=options.quick)


class Host(App[None]):
    def __init__(self, screen: BenchScreen) -> None:
        super().__init__()
        self.bench = screen

    def on_mount(self) -> None:
        self.push_screen(self.bench)


def dialog(app: App[Any]) -> NewBenchRun:
    assert isinstance(app.screen, NewBenchRun)
    return app.screen


async def open_dialog(pilot: Any, app: App[Any], listed: int) -> SelectionList[str]:
    await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, NewBenchRun), "the new-run dialog")
    models = dialog(app).query_one("#bench-models", SelectionList)
    await wait_until(pilot, lambda: models.option_count == listed, "the installed models listed")
    return models


def text(app: App[Any], selector: str) -> str:
    return str(app.screen.query_one(selector, Label).render())


async def test_n_lists_installed_models_and_start_runs_them_with_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    install(*LLMS)
    install(SPEECH, kind="whisper")
    fake = ScriptedRunner(hold=("fam:q8_0", "speed"))
    monkeypatch.setattr(runner, "run", fake)
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        models = await open_dialog(pilot, app, 3)
        prompts = [str(models.get_option_at_index(i).prompt) for i in range(3)]
        assert [p.split()[0] for p in prompts] == [*LLMS, SPEECH]
        assert "speech" in prompts[2] and "chat" in prompts[0]
        await pilot.press("space", "down", "space")  # the two language models
        assert sorted(models.selected) == list(LLMS)
        await pilot.click("#bench-start")
        await wait_until(pilot, lambda: app.screen is screen, "the dialog to close")
        status = screen.query_one("#bench-status", Label)
        await wait_until(pilot, lambda: fake.holding.is_set(), "the run to reach the held step")
        await wait_until(pilot, lambda: "variant 2/2 · fam:q8_0 · speed" in str(status.render()), "the progress")
        bar = screen.query_one("#bench-progress", ProgressBar)
        assert (bar.total, bar.progress) == (6, 5)
        assert screen.query_one("#bench-progress-row").display
        assert fake.options is not None and fake.options.quick
        await pilot.press("n")  # no second run while one is going
        assert app.screen is screen
        fake.release()
        table = screen.query_one("#bench-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, "the table of the new run")
        await wait_until(pilot, lambda: "saved as run" in str(status.render()), "the run saved")
        assert not screen.query_one("#bench-progress-row").display
    assert [r.model_ids for r in results.history()] == [list(LLMS)]


async def test_full_is_a_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    install(*LLMS)
    fake = ScriptedRunner()
    monkeypatch.setattr(runner, "run", fake)
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        models = await open_dialog(pilot, app, 2)
        models.select("fam:q2_k")
        await pilot.click("#bench-full")
        await pilot.click("#bench-start")
        await wait_until(pilot, lambda: "saved as run" in text(app, "#bench-status"), "the run saved")
    assert fake.options is not None and not fake.options.quick


async def test_escape_cancels_the_dialog_then_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    install(*LLMS)
    fake = ScriptedRunner(hold=("fam:q2_k", "load"))
    monkeypatch.setattr(runner, "run", fake)
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(pilot, app, 2)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen, "the dialog to close")
        assert screen._cancel is None  # nothing started

        models = await open_dialog(pilot, app, 2)
        models.select("fam:q2_k")
        await pilot.click("#bench-start")
        await wait_until(pilot, lambda: fake.holding.is_set(), "the run to start")
        await pilot.press("escape")
        status = screen.query_one("#bench-status", Label)
        await wait_until(pilot, lambda: "cancelled" in str(status.render()), "the cancellation")
        assert app.screen is screen  # the first Escape stops the run, it doesn't leave the screen
    assert results.history() == []


async def test_mixing_speech_and_language_models_says_the_domains_line(monkeypatch: pytest.MonkeyPatch) -> None:
    install(*LLMS)
    install(SPEECH, kind="whisper")
    monkeypatch.setattr(runner, "run", ScriptedRunner())
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        models = await open_dialog(pilot, app, 3)
        await pilot.click("#bench-start")
        await wait_until(pilot, lambda: "choose one or more" in text(app, "#bench-new-status"), "nothing chosen")
        models.select("fam:q2_k")
        models.select(SPEECH)
        dialog(app).query_one("#bench-start", Button).press()  # a second click this soon would be a double click
        expected = errors.one_line(_refusal(), typed=True)
        await wait_until(
            pilot,
            lambda: text(app, "#bench-new-status") == expected,
            f"the domain refusal, got {text(app, '#bench-new-status')!r} not {expected!r}",
        )
        assert "together" in expected
        assert isinstance(app.screen, NewBenchRun)  # still open: the choice can be corrected
    assert results.history() == []


def _refusal() -> BaseException:
    try:
        runner.plan(["fam:q2_k", SPEECH])
    except errors.AssistantError as exc:
        return exc
    raise AssertionError("the domain accepted a mixed run")


async def test_r_before_the_runs_are_read_still_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    install(*LLMS)
    gate = threading.Event()
    history = results.history

    def slow_history(limit: int = 20) -> list[Run]:
        gate.wait(10)
        return history(limit)

    monkeypatch.setattr(results, "history", slow_history)
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.screen is screen, "the screen")
        await pilot.press("r")  # pressed while the stored runs are still being read
        gate.set()
        await wait_until(pilot, lambda: isinstance(app.screen, NewBenchRun), "the new-run dialog")


async def test_new_run_is_in_the_palette() -> None:
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "no benchmark runs" in str(screen.query_one("#bench-status").render()), "")
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"New bench")

        def offered() -> list[str]:
            return [str(o.prompt) for o in app.screen.query_one(OptionList).options]

        await wait_until(pilot, lambda: any("Choose installed models" in o for o in offered()), "New run offered")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, NewBenchRun), "the new-run dialog")
    assert any(b.id == "bench.new" and b.key == "n" and b.show for b in BenchScreen.BINDINGS if isinstance(b, Binding))


@pytest.mark.slow
async def test_a_real_quick_run_of_the_starter_model(installed_models: dict[str, object]) -> None:
    """The whole way: the dialog, ``runner.plan`` and ``runner.run`` on SmolLM2 in a child process, stored."""
    started = time.monotonic()
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        models = await open_dialog(pilot, app, len(installed_models))
        models.select(SMOL)
        await pilot.click("#bench-start")
        status = screen.query_one("#bench-status", Label)
        await wait_until(pilot, lambda: f"1/1 · {SMOL} · " in str(status.render()), "the progress", 60)
        table = screen.query_one("#bench-table", DataTable)
        await wait_until(pilot, lambda: "saved as run" in str(status.render()), "the run saved", 240)
        assert table.row_count == 1 and str(table.get_row(SMOL)[0]).startswith(SMOL)
    assert [r.model_ids for r in results.history()] == [[SMOL]]
    assert time.monotonic() - started < 240
