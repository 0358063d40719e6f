"""The built-in KLD/PPL text is long enough in the real SmolLM2 tokenizer: 20,000 tokens, 3,000 per genre.

A quantized variant's KLD is averaged over these tokens; below a few thousand per genre the number moves
more with the sample than with the variant."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.bench import tasks

from conftest import SMOL


@pytest.fixture(scope="module")
def vocab(starter_files: dict[str, Path]):
    import llama_cpp

    # vocab_only: the tokenizer without the weights, so this costs a fraction of a load.
    return llama_cpp.Llama(str(starter_files[SMOL]), vocab_only=True, verbose=False)


def count(vocab, text: str) -> int:
    return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def test_builtin_text_is_at_least_20000_tokens(vocab) -> None:
    assert count(vocab, tasks.eval_text()) >= 20_000


@pytest.mark.parametrize("genre", tasks.GENRES)
def test_each_genre_is_at_least_3000_tokens(vocab, genre: str) -> None:
    assert count(vocab, tasks.eval_genres()[genre]) >= 3_000
