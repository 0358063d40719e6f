"""The benchmark entry point both fronts call: what it plans, and which measurement it hands the run to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assistant.bench import llm, runner, speech
from assistant.errors import AssistantError


@pytest.fixture
def store(tmp_path: Path) -> Any:
    from assistant.store import Installed, Store

    registry = Store()
    for model_id, kind in (("fam:q8_0", "llm"), ("fam:q2_k", "llm"), ("whisper-a:int8", "whisper")):
        path = tmp_path / model_id
        path.write_bytes(b"x")
        registry.add(Installed(model_id, kind, path, False, 1, None, "import"))
    yield registry
    registry.conn.close()


def test_a_plan_names_installed_variants_of_one_kind(store: Any) -> None:
    planned = runner.plan(["fam"], store=store)
    assert (planned.ids, planned.kind) == (("fam:q2_k", "fam:q8_0"), "llm")
    assert runner.plan(["whisper-a:int8"], store=store).kind == "whisper"
    with pytest.raises(AssistantError, match="can't be benchmarked together"):
        runner.plan(["fam:q8_0"], reference="whisper-a:int8", store=store)
    with pytest.raises(AssistantError, match="not installed"):
        runner.plan(["nope:q4_0"], store=store)


@pytest.mark.parametrize(("model_id", "measured"), [("fam:q8_0", "llm"), ("whisper-a:int8", "speech")])
def test_run_hands_each_kind_its_own_options(
    store: Any, monkeypatch: pytest.MonkeyPatch, model_id: str, measured: str
) -> None:
    calls: list[tuple[str, Any, dict[str, Any]]] = []

    def fake(name: str) -> Any:
        def run(ids: Any, *, options: Any, **kwargs: Any) -> str:
            calls.append((name, options, {"ids": tuple(ids), **kwargs}))
            return "the run"

        return run

    monkeypatch.setattr(llm, "run", fake("llm"))
    monkeypatch.setattr(speech, "run", fake("speech"))
    planned = runner.plan([model_id], store=store)
    options = runner.Options(quick=True, threads=2, ctx=1024)
    assert runner.run(planned, options=options, cancel="token") == "the run"
    ((name, opts, kwargs),) = calls
    assert name == measured and kwargs["ids"] == (model_id,) and kwargs["cancel"] == "token"
    expected = (
        llm.Options(reps=1, quick=True, threads=2, ctx=1024)
        if measured == "llm"
        else speech.Options(reps=1, quick=True, threads=2)
    )
    assert opts == expected
    assert runner.Options().repetitions == 3 and runner.Options(quick=True, reps=5).repetitions == 5


@pytest.mark.parametrize(
    ("sweep", "refused"),
    [({"threads": [2]}, False), ({"threads": [1, 2]}, True), ({"kv_type": ["q8_0"]}, True)],
)
def test_a_speech_run_takes_a_thread_count_but_no_setting_lists(
    store: Any, monkeypatch: pytest.MonkeyPatch, sweep: dict[str, list[Any]], refused: bool
) -> None:
    """``assistant bench whisper… --threads 2`` arrives as a one-value list: a thread count, not a sweep."""
    from assistant.errors import AssistantError

    monkeypatch.setattr(speech, "run", lambda ids, **kwargs: "the run")
    planned = runner.plan(["whisper-a:int8"], store=store)
    options = runner.Options(quick=True, threads=2, sweep=sweep)
    if refused:
        with pytest.raises(AssistantError, match="for language models"):
            runner.run(planned, options=options)
    else:
        assert runner.run(planned, options=options) == "the run"


def test_the_speculative_column_is_for_language_models(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.errors import AssistantError

    seen: list[Any] = []

    def fake_llm_run(ids: Any, *, options: Any, **kwargs: Any) -> str:
        seen.append(options)
        return "the run"

    monkeypatch.setattr(speech, "run", lambda ids, **kwargs: "the run")
    monkeypatch.setattr(llm, "run", fake_llm_run)
    with pytest.raises(AssistantError, match="--speculative"):
        runner.run(runner.plan(["whisper-a:int8"], store=store), options=runner.Options(speculative=True))
    assert runner.run(runner.plan(["fam:q8_0"], store=store), options=runner.Options(speculative=True)) == "the run"
    assert seen[0].speculative is True
