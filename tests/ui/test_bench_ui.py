"""The benchmark screen, in a small host app, over runs stored in this test's database (no model loaded)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App
from textual.widgets import DataTable, Label, Static

from assistant.bench import fingerprint, results
from assistant.bench.results import Run
from assistant.ui.screens.bench_new import NewBenchRun
from assistant.ui.screens.bench_screen import BenchScreen

from conftest import WHISPER
from helpers.ui import wait_until


def _store(tag: str, tg: float) -> int:
    def row(model_id: str, **extra: Any) -> dict[str, Any]:
        return {"id": model_id, "reference": "fam:q8_0", "is_reference": model_id == "fam:q8_0",
                "size_bytes": 90_000_000, "tg_tps": tg, "pp_tps": 500.0, "ttft_ms": 50.0, "peak_rss_mb": 200.0,
                "top1_agreement": 0.7, "ppl_ratio": 1.1, "kld": 0.2, "accuracy": 0.8, "per": 1.1, **extra}  # fmt: skip

    rows = [row("fam:q8_0", top1_agreement=1.0, per=1.0, size_bytes=145_000_000), row(f"fam:{tag}")]
    return results.save(Run(kind="llm", rows=rows, fingerprint=fingerprint.collect(2, 2048), threads=2, context=2048))


class Host(App[None]):
    def __init__(self, screen: BenchScreen) -> None:
        super().__init__()
        self.bench = screen
        self.closed = False

    def on_mount(self) -> None:
        def done(_: None) -> None:
            self.closed = True

        self.push_screen(self.bench, done)


async def test_shows_the_newest_run_and_moves_between_runs() -> None:
    older = _store("q4_k_m", 70.0)
    newer = _store("q2_k", 90.0)
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        table = screen.query_one("#bench-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, "the table to fill")
        assert screen.current is not None and screen.current.id == newer
        assert str(table.get_row("fam:q2_k")[0]) == "fam:q2_k"  # cells are plain Text (data, not markup)
        assert "fam:q8_0 *" in table.get_row("fam:q8_0")[0]
        plot_text = str(screen.query_one("#bench-plot", Static).render())
        assert "q2_k" in plot_text
        assert f"run {newer}" in str(screen.query_one("#bench-title", Label).render())

        await pilot.press("left_square_bracket")
        assert screen.current is not None and screen.current.id == older
        await wait_until(pilot, lambda: "q4_k_m" in str(screen.query_one("#bench-plot", Static).render()), "plot")
        await pilot.press("right_square_bracket")
        assert screen.current is not None and screen.current.id == newer

        await pilot.press("escape")
        await wait_until(pilot, lambda: app.closed, "the screen to close")


async def test_empty_history_says_how_to_start() -> None:
    screen = BenchScreen()
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        status = screen.query_one("#bench-status", Label)
        await wait_until(pilot, lambda: "no benchmark runs yet" in str(status.render()), "the empty message")
        assert "press n" in str(status.render())
        await pilot.press("r")  # nothing to re-run: it offers a new run instead
        await wait_until(pilot, lambda: isinstance(app.screen, NewBenchRun), "the new-run dialog")
        assert screen._cancel is None


@pytest.mark.slow
async def test_rerun_can_be_cancelled_and_stores_nothing(installed_models: dict[str, object]) -> None:
    """A real re-run (Whisper, in a child process) stopped with Escape: no run stored, no child left."""
    import psutil

    row = {"id": WHISPER, "reference": WHISPER, "is_reference": True, "size_bytes": 78_000_000, "rtf": 0.1,
           "wer": 0.1, "peak_rss_mb": 250.0, "per": 1.0}  # fmt: skip
    run_id = results.save(Run(kind="whisper", rows=[row], fingerprint=fingerprint.collect(1, None), threads=1))
    screen = BenchScreen(run_id)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        status = screen.query_one("#bench-status", Label)
        await wait_until(pilot, lambda: screen.current is not None, "the run to show")
        await pilot.press("r")
        await wait_until(pilot, lambda: f"1/1 · {WHISPER} · " in str(status.render()), "the benchmark to start", 60)
        await pilot.press("escape")
        await wait_until(pilot, lambda: "cancelled" in str(status.render()), "the cancellation", 30)
        assert not app.closed  # the first Escape stops the run; it doesn't leave the screen
    assert [r.id for r in results.history()] == [run_id]
    children = psutil.Process().children(recursive=True)
    assert not [p for p in children if "_worker" in " ".join(p.cmdline())]  # killed and reaped


async def test_a_verdict_is_shown_under_the_table_once_the_report_can_render_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.text import Text

    from assistant.bench import report

    plain_run = _store("q4_k_m", 70.0)
    rows = results.history()[0].rows
    opts = {"verdict": {"pick": "fam:q2_k"}}
    with_verdict = results.save(Run(kind="llm", rows=rows, fingerprint=fingerprint.collect(2, 2048), options=opts))
    monkeypatch.setattr(report, "render_verdict", lambda v: Text(f"pick [b]{v['pick']}[/b]"), raising=False)
    screen = BenchScreen(with_verdict)
    app = Host(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        verdict = screen.query_one("#bench-verdict", Static)
        await wait_until(pilot, lambda: screen.current is not None, "the run to show")
        assert verdict.display and str(verdict.render()) == "pick [b]fam:q2_k[/b]"  # a Text: never markup
        await pilot.press("left_square_bracket")
        assert screen.current is not None and screen.current.id == plain_run
        assert not verdict.display
