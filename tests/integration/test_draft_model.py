"""Speculative decoding with a draft model (``runtime.speculative = "draft:ID"``) on the real models: which
installed models can draft for which (``models info``), a draft with another vocabulary refused in one line,
and a draft model whose guesses the target checks — a greedy reply is the target's own, token for token.

A second copy of SmolLM2 Q4_1 (a hard link: the same weights) drafts for it, so nearly every guess is right;
its cost is set to nothing so the drafts are made (a draft as large as the target would never pay)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from assistant.engine import LlamaEngine
from assistant.errors import AssistantError
from assistant.store import Installed

from conftest import assert_one_line_error, run_cli
from integration.test_speculative import _reply

SMOLLM, GEMMA = "smollm2-135m-instruct:q4_1", "gemma3-270m:q4_k_m"
PROMPT = "Tell me a short story about a robot who learns to paint."


@pytest.mark.slow
def test_a_draft_model_drafts_and_the_target_checks_it(starter_files: dict[str, Path], tmp_path: Path) -> None:
    twin = tmp_path / "twin.gguf"
    os.link(starter_files[SMOLLM], twin)
    draft = Installed(
        id="twin", kind="llm", path=twin, managed=False, size_bytes=twin.stat().st_size, sha256=None, source="test"
    )
    engine = LlamaEngine(
        starter_files[SMOLLM], n_ctx=2048, n_threads=2, model_id=SMOLLM, speculative="off", draft=draft
    )
    try:
        assert engine._draft is not None
        engine._draft.cost = 0.0  # the same size as the target: it would never pay, and so never be asked
        plain, plain_stats = _reply(engine, PROMPT, "off")
        drafted, stats = _reply(engine, PROMPT, "draft:twin")
        _, lookup_stats = _reply(engine, PROMPT, "lookup")  # lookup alone never asks the draft model
        assert plain_stats.drafted_tokens == 0
        assert stats.drafted_tokens > lookup_stats.drafted_tokens
        assert stats.accepted_tokens >= 0.8 * stats.drafted_tokens  # its own weights: nearly every guess is right
        assert drafted == plain  # the target checks every guess: its own reply, token for token
    finally:
        engine.close()


@pytest.mark.slow
def test_models_info_names_the_drafts_and_another_vocabulary_is_refused(installed_models: dict[str, object]) -> None:
    from assistant import drafts, quantize
    from assistant.store import Store

    quantize.quantize(SMOLLM, ["q8_0"], threads=2)
    big = json.loads(run_cli("models", "info", "smollm2-135m-instruct:q8_0", "--json").stdout)
    small = json.loads(run_cli("models", "info", SMOLLM, "--json").stdout)
    assert big["drafted_by"] == [SMOLLM] and big["drafts_for"] == []
    assert small["drafts_for"] == ["smollm2-135m-instruct:q8_0"] and GEMMA not in small["drafted_by"]
    text = run_cli("models", "info", "smollm2-135m-instruct:q8_0").stdout
    assert "drafted by" in text and SMOLLM in text

    store = Store()
    try:
        target = store.require("smollm2-135m-instruct:q8_0")
        assert drafts.resolve(f"draft:{SMOLLM}", target, store).id == SMOLLM  # type: ignore[union-attr]
        assert drafts.resolve("auto", target, store) is None  # 0.68 of its size: does not pay
        with pytest.raises(AssistantError, match="another vocabulary"):
            drafts.resolve(f"draft:{GEMMA}", target, store)
    finally:
        store.conn.close()
    line = assert_one_line_error(run_cli("chat", "-p", "hi", "--speculative", f"draft:{GEMMA}"))
    assert "another vocabulary" in line
    line = assert_one_line_error(run_cli("chat", "-p", "hi", "--speculative", "sometimes"))
    assert "--speculative" in line

    out = json.loads(
        run_cli(
            "chat", "-m", "smollm2-135m-instruct:q8_0", "-p", PROMPT, "--temperature", "0", "--max-tokens", "48",
            "--speculative", f"draft:{SMOLLM}", "--json",
        ).stdout
    )  # fmt: skip
    assert out["text"] and 0 <= out["accepted_tokens"] <= out["drafted_tokens"]
