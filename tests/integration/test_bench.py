"""``assistant bench`` on real models: SmolLM2 quantized to q8_0 and q2_k for real, then benchmarked --quick;
Whisper tiny.en on the shipped clips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import SMOL, WHISPER, assert_one_line_error, env_vars, register_model, run_cli

pytestmark = pytest.mark.slow

Q8 = "smollm2-135m-instruct:q8_0"
Q2 = "smollm2-135m-instruct:q2_k"
MiB = 1024 * 1024
REQUIRED_KEYS = {
    "id", "size_bytes", "load_s", "pp_tps", "tg_tps", "ttft_ms", "peak_rss_mb", "ppl_ratio", "kld", "top1_agreement",
    "accuracy", "per", "load_s_sd", "pp_tps_sd", "tg_tps_sd", "ttft_ms_sd", "fit_estimate_mb", "fit_error_pct",
    "reference", "per_axes",
}  # fmt: skip


def _home(home: Path) -> Any:
    return env_vars(ASSISTANT_HOME=str(home))


@pytest.fixture(scope="module")
def bench_home(starter_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home of its own for this module: the SmolLM2 starter plus q8_0 and q2_k made from it."""

    home = tmp_path_factory.mktemp("bench-home")
    with _home(home):
        register_model(SMOL, starter_files[SMOL])
    result = run_cli("models", "quantize", SMOL, "--to", "q8_0,q2_k", env={"ASSISTANT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return home


@pytest.fixture(scope="module")
def quick_run(bench_home: Path) -> dict[str, Any]:
    """``bench --reference``: q8_0 is the reference although the family's source (the Q4_1 starter) is installed."""
    result = run_cli("bench", Q8, Q2, "--reference", Q8, "--quick", "--json", env={"ASSISTANT_HOME": str(bench_home)})
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _rows(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in run["results"]}


def test_quick_bench_reports_every_key(quick_run: dict[str, Any]) -> None:
    rows = _rows(quick_run)
    assert set(rows) == {Q8, Q2}
    for row in rows.values():
        assert set(row) >= REQUIRED_KEYS, REQUIRED_KEYS - set(row)
    assert quick_run["run_id"] is not None
    assert quick_run["quick"] is True and quick_run["fingerprint"]["llama_cpp"]


def test_reference_option_picks_the_reference_and_it_scores_exactly_one(quick_run: dict[str, Any]) -> None:
    rows = _rows(quick_run)
    assert SMOL not in rows  # the source variant is not added when --reference names another
    ref = rows[Q8]
    assert ref["is_reference"] and rows[Q2]["reference"] == Q8 and not rows[Q2]["is_reference"]
    assert ref["per"] == 1.0  # exactly: every ratio is x / x
    assert ref["ppl_ratio"] == 1.0 and ref["kld"] == 0.0 and ref["top1_agreement"] == 1.0


def test_quick_bench_values_are_sane(quick_run: dict[str, Any]) -> None:
    rows = _rows(quick_run)
    q2 = rows[Q2]
    assert q2["ppl_ratio"] > 1.0  # 2-bit weights predict the text worse than 8-bit ones
    assert q2["kld"] > 0.0
    assert 0.0 < q2["top1_agreement"] < 1.0
    assert q2["size_bytes"] < rows[Q8]["size_bytes"]
    for row in rows.values():
        assert row["tg_tps"] > 0 and row["pp_tps"] > row["tg_tps"]  # a batch of 512 beats one token at a time
        assert row["ttft_ms"] > 0 and row["load_s"] > 0
        # every weight is read during the speed tests, so the mapped file counts in RSS
        assert row["peak_rss_mb"] > row["size_bytes"] / MiB
        assert abs(row["fit_error_pct"]) < 60
        assert row["tasks_total"] >= 50 and 0.0 <= row["accuracy"] <= 1.0
        assert min(row["per_axes"].values()) >= 0.05 and max(row["per_axes"].values()) <= 20
        assert row["per"] > 0
    assert rows[Q8]["accuracy"] > 0.5  # well above chance (about 0.33 for these 2-4 way items)


def test_run_is_stored_and_exported(quick_run: dict[str, Any], bench_home: Path, tmp_path: Path) -> None:
    env = {"ASSISTANT_HOME": str(bench_home)}
    run_id = str(quick_run["run_id"])
    history = run_cli("bench", "history", "--json", env=env)
    assert history.returncode == 0, history.stderr
    runs = {r["run_id"]: r for r in json.loads(history.stdout)}
    assert [r["id"] for r in runs[int(run_id)]["results"]] == [Q8, Q2]

    csv_out = run_cli("bench", "export", run_id, "--format", "csv", env=env)
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("run_id,id,") and "per" in lines[0].split(",")
    assert len(lines) == 3

    md_file = tmp_path / "run.md"
    md = run_cli("bench", "export", "last", "--format", "md", "-o", str(md_file), env=env)
    assert md.returncode == 0, md.stderr
    text = md_file.read_text()
    assert "| model |" in text and f"{Q8} *" in text and "PER" in text

    js = run_cli("bench", "export", run_id, "--format", "json", env=env)
    assert json.loads(js.stdout)["results"][0]["id"] == Q8

    svg = tmp_path / "plot.svg"
    plotted = run_cli("bench", "plot", run_id, "--svg", str(svg), "--width", "80", env=env)
    assert plotted.returncode == 0, plotted.stderr
    assert "q2_k" in plotted.stdout and svg.read_text().startswith("<svg")

    compared = run_cli("bench", "compare", run_id, run_id, "--json", env=env)
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["differences"] == {run_id: []}


def test_interrupted_bench_stores_nothing(bench_home: Path, quick_run: dict[str, Any]) -> None:
    from assistant.bench import llm, results

    with _home(bench_home):
        before = [r.id for r in results.history()]

        def interrupt(model_id: str, event: dict[str, Any]) -> None:
            if event.get("event") == "advance":
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            llm.run([Q2], options=llm.Options(reps=1, quick=True, threads=1, ctx=1024), progress=interrupt)
        assert [r.id for r in results.history()] == before


def test_reference_choice(bench_home: Path) -> None:
    """The family's source variant (the Q4_1 starter q8_0 and q2_k were made from), not the most bits in the run."""
    from assistant.bench import llm
    from assistant.store import Store

    with _home(bench_home):
        store = Store()
        for ids in ([Q2, SMOL, Q8], [Q8], [Q2]):
            targets = llm.resolve_targets(ids, store)
            assert llm.choose_references(targets, store)["smollm2-135m-instruct"].id == SMOL
        targets = llm.resolve_targets([Q2, SMOL, Q8], store)
        forced = llm.choose_references(targets, store, targets[0])
        assert forced["smollm2-135m-instruct"].id == Q2
        store.conn.close()


def test_default_reference_is_the_source_variant_measured_though_not_named(bench_home: Path) -> None:
    result = run_cli("bench", Q2, "--quick", "--json", env={"ASSISTANT_HOME": str(bench_home)})
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert [r["id"] for r in rows] == [SMOL, Q2]  # the reference first
    assert rows[0]["is_reference"] and rows[0]["per"] == 1.0 and rows[0]["kld"] == 0.0
    assert rows[1]["reference"] == SMOL and rows[1]["kld"] > 0.0


def _fixed_measurements(name: str, spec: dict[str, Any], on_event: Any = None, cancel: Any = None) -> dict[str, Any]:
    """What a bench child would report, as a fixed function of the variant and its reference file: the
    property under test is which reference each row is scored against, not the timing."""
    size = Path(spec["path"]).stat().st_size / MiB
    ref = Path(spec["ref_path"]).stat().st_size / MiB if spec["ref_path"] else size
    from assistant.bench import llm

    items = llm.Options(quick=True).task_items()
    right = round(len(items) * (0.5 + size / 1000))
    speed = {"load_s": size / 100, "pp_tps": 30_000 / size, "tg_tps": 6000 / size, "ttft_ms": size}
    return {
        **{f"{k}{suffix}": v for k, v in speed.items() for suffix in ("", "_lo", "_hi")},
        **{f"{k}_sd": 0.0 for k in speed}, "ttft_prompt_tokens": 52, "peak_rss_mb": size + 100,
        "ppl": 10 + abs(size - ref), "ppl_ratio": 1 + abs(size - ref) / 100, "kld": abs(size - ref) / 100,
        "top1_agreement": 1 - abs(size - ref) / 1000, "eval_tokens": 128,
        "task_results": [1] * right + [0] * (len(items) - right), "task_replies": {},
    }  # fmt: skip


def test_adding_a_variant_with_more_bits_changes_no_other_score(
    bench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's PER claim: q2_k alone, then q2_k with q8_0 (more bits per weight than anything else
    installed): q2_k keeps its reference, its ratios and its PER."""
    from assistant.bench import llm, worker

    monkeypatch.setattr(worker, "run", _fixed_measurements)
    options = llm.Options(reps=1, quick=True, threads=1, ctx=1024)
    with _home(bench_home):
        alone = {r["id"]: r for r in llm.run([Q2], options=options).rows}
        more = {r["id"]: r for r in llm.run([Q2, Q8], options=options).rows}
    assert more[Q8]["bpw"] > max(alone[Q2]["bpw"], alone[SMOL]["bpw"])
    assert alone[Q2]["reference"] == more[Q2]["reference"] == SMOL
    assert more[Q2]["per_axes"] == alone[Q2]["per_axes"] and more[Q2]["per"] == alone[Q2]["per"]
    assert alone[Q2]["per"] != 1.0 and more[Q8]["per"] != 1.0  # scored against the source, not themselves


def test_each_rows_progress_plan_counts_its_speed_passes(bench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference is timed between every second candidate, so its bar plans more speed passes; every
    bar ends at its plan, "done" after its last pass. The child is faked (it steps as ``measure.work``)."""
    from assistant.bench import llm, worker

    options = llm.Options(reps=2, quick=True, threads=1, ctx=1024)
    speed_pass = dataclasses.replace(options, reps=1).speed_units  # load, one pp + tg, the TTFT

    def child(name: str, spec: dict[str, Any], on_event: Any = None, cancel: Any = None) -> dict[str, Any]:
        units = 7 if spec.get("quality_only") else speed_pass
        if spec.get("quality_only"):
            on_event({"event": "plan", "units": units})
        for _ in range(units):
            on_event({"event": "advance", "stage": "x"})
        return _fixed_measurements(name, spec)

    events: dict[str, list[dict[str, Any]]] = {}
    monkeypatch.setattr(worker, "run", child)
    with _home(bench_home):
        llm.run([Q2, Q8], options=options, progress=lambda row, event: events.setdefault(row, []).append(event))
    planned = {row: next(e["units"] for e in got if e["event"] == "plan") for row, got in events.items()}
    for row, got in events.items():
        assert got[-1]["event"] == "done" and [e["event"] for e in got].count("done") == 1
        assert sum(e["event"] == "advance" for e in got) == planned[row]
    assert planned[SMOL] - 7 == 2 * 2 * speed_pass  # R Q2 Q8 R: two passes a round, two rounds
    assert planned[Q2] - 7 == planned[Q8] - 7 == 2 * speed_pass


def test_speech_bench_quick(installed_models: dict[str, object]) -> None:
    result = run_cli("bench", WHISPER, "--quick", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["results"]
    assert row["id"] == WHISPER and row["per"] == 1.0
    assert 0 < row["rtf"] < 5 and row["wer"] < 0.5
    assert row["peak_rss_mb"] > 0 and row["latency_ms"] > 0
    assert {"load_s", "rtf_sd", "fit_estimate_mb", "x_realtime"} <= set(row)
    # an English-only model runs the English clips only, and says so
    assert row["languages"] == ["en"] and list(row["wer_by_language"]) == ["en"]
    assert row["wer_lo"] <= row["wer"] <= row["wer_hi"] and 0 < row["rtf_lo"] <= row["rtf_hi"]
    assert list(row["wer_by_condition"]) == ["clean", "20db", "10db", "5db"]
    assert all(c["clips"] == row["clips"] / 4 for c in row["wer_by_condition"].values())


def test_speech_bench_multilingual_model_runs_every_language(
    whisper_base_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measuring child's work, in this process on the clean quick clips only (the noisy ones cost a
    minute more under load and go the same way): each language transcribed with its language set."""
    from assistant.bench import clips, speech

    def clean_quick(plan: list[clips.BenchClip], **kwargs: Any) -> list[clips.BenchClip]:
        return [c for c in select(plan, **kwargs) if c.condition == "clean"]

    select = clips.select
    monkeypatch.setattr(clips, "select", clean_quick)
    folder = clips.ensure(clips.select(clips.plan(), quick=True))
    spec = {"reps": 1, "quick": True, "threads": 2, "path": str(whisper_base_dir), "compute_type": "int8"}
    row = speech.work({**spec, "clip_dir": str(folder)}, lambda event: None)
    assert row["languages"] == ["en", "de", "fr", "es"]
    for lang, figures in row["wer_by_language"].items():
        assert figures["clips"] == (3 if lang == "en" else 1), (lang, figures)
        assert figures["wer_lo"] <= figures["wer"] <= figures["wer_hi"]
    assert row["wer_by_language"]["en"]["wer"] == row["wer"] < 0.5
    assert list(row["wer_by_condition"]) == ["clean"] and row["wer_by_condition"]["clean"]["wer"] < 0.6
    assert row["clips"] == 6 and row["peak_rss_mb"] > 0 and 0 < row["rtf_lo"] <= row["rtf_hi"]


def test_speech_bench_without_espeak_is_one_line(installed_models: dict[str, object]) -> None:
    result = run_cli("bench", WHISPER, "--quick", env={"PATH": "/nonexistent"})
    assert "espeak-ng and sox" in assert_one_line_error(result)


def test_mixed_kinds_and_unknown_models_are_one_line_errors(installed_models: dict[str, object]) -> None:
    mixed = run_cli("bench", SMOL, WHISPER, "--quick")
    assert "separately" in assert_one_line_error(mixed)
    unknown = run_cli("bench", "nothing-here:q1", "--quick")
    assert "not installed" in assert_one_line_error(unknown)
    no_run = run_cli("bench", "export", "99")
    assert "no benchmark run 99" in assert_one_line_error(no_run)


def test_cached_reference_rows_score_as_the_loaded_reference(bench_home: Path, tmp_path: Path) -> None:
    """The reference's log-probabilities written by its own row and read by a candidate give the figures the
    reference loaded next to the candidate gives, to the last digit; the run leaves no scratch folder."""
    import llama_cpp

    from assistant import paths
    from assistant.bench import llm, measure
    from assistant.bench import tasks as bench_tasks
    from assistant.bench.llama_model import LlamaModel
    from assistant.store import Store

    with _home(bench_home):
        store = Store()
        ref_path, cand_path = (str(store.require(i).path) for i in (SMOL, Q2))
        store.conn.close()
        leftovers = list(paths.cache_dir().glob(f"{llm.SCRATCH_PREFIX}*"))
    assert leftovers == []  # the module's runs removed theirs
    llama_cpp.llama_backend_init()
    opts = llm.Options(quick=True, threads=2)
    text = bench_tasks.eval_text(None)
    quiet = lambda stage: None  # noqa: E731
    ref = LlamaModel(ref_path, n_ctx=opts.chunk + 160, n_batch=llm.EVAL_BATCH, threads=2)
    own = measure.quality_against(ref, None, text, opts, quiet, save_rows=tmp_path)
    assert "kld" not in own
    cand = LlamaModel(cand_path, n_ctx=opts.chunk + 8, n_batch=llm.EVAL_BATCH, threads=2)
    rows = measure.read_ref_rows(tmp_path, measure._windows(cand, text, opts)[1])
    assert rows is not None and rows.shape == (own["eval_tokens"], cand.n_vocab)
    assert measure.read_ref_rows(tmp_path, "another text") is None
    cached = measure.quality_against(cand, None, text, opts, quiet, ref_rows=rows)
    del rows
    ref.new_context(n_ctx=opts.chunk + 8, n_batch=llm.EVAL_BATCH, threads=2)
    loaded = measure.quality_against(cand, ref, text, opts, quiet)
    assert cached == loaded and cached["kld"] > 0.05
    assert oct((tmp_path / "ref_rows.npy").stat().st_mode & 0o777) == "0o600"
    ref.close()
    cand.close()


def test_the_speculative_column_times_lookup_on_grounded_prompts(bench_home: Path) -> None:
    env = {"ASSISTANT_HOME": str(bench_home)}
    result = run_cli("bench", SMOL, "--quick", "--speculative", "--json", "--no-save", env=env)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["results"]
    assert row["spec_ratio_lo"] <= row["spec_ratio"] <= row["spec_ratio_hi"]
    assert 0.3 < row["spec_ratio"] < 5  # a speed-up or a small loss, measured
    assert row["spec_tps"] > 0 and row["spec_plain_tps"] > 0
    assert 0 <= row["spec_acceptance"] <= 1  # the grounded prompts are drafted for
    table = run_cli("bench", SMOL, "--quick", "--speculative", "--reps", "1", "--no-save", env=env)
    assert table.returncode == 0, table.stderr
    assert "lookup ×" in table.stdout and "taken" in table.stdout
