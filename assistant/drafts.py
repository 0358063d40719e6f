"""Which installed models can draft for which: speculative decoding with a draft model
(``speculative.DraftModel``; ``runtime.speculative = "draft:ID"``, or ``"auto"``).

A draft model guesses the next tokens for a larger model and the larger one checks them in one batch, so the
two must share a vocabulary: the same token list, byte for byte (``gguf.GGUFInfo.vocab_digest``). On a CPU a
token costs about what reading the weights costs, so a draft pays only when it is much smaller than the model it
drafts for: ``auto`` takes one only below ``PAYS_BELOW`` of the target's size (a q2_k of the same 135M model
is 0.6 of its q8_0, and costs more than it saves)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import gguf
from .errors import AssistantError

if TYPE_CHECKING:
    from .store import Installed, Store

PAYS_BELOW = 0.35


def vocab_digest(item: Installed) -> str:
    """``item``'s vocabulary digest, from the store's cached header (read from the file for entries installed
    before the digest was cached); "" when it has none or its file cannot be read."""
    digest = item.info.get("vocab_digest")
    if isinstance(digest, str) and digest:
        return digest
    try:
        stat = item.path.stat()
    except OSError:
        return ""
    return _read_digest(str(item.path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _read_digest(path: str, size: int, mtime_ns: int) -> str:
    """The digest from the file's header (0.1-0.2 s for a 50k-token vocabulary), once per file version."""
    try:
        return gguf.read(path).vocab_digest
    except AssistantError:
        return ""


def compatible(target: Installed, installed: Iterable[Installed]) -> list[Installed]:
    """The other installed language models that share ``target``'s vocabulary, smallest first."""
    digest = vocab_digest(target)
    if not digest:
        return []
    found = [
        m
        for m in installed
        if m.kind == "llm" and m.id != target.id and m.path != target.path and vocab_digest(m) == digest
    ]
    return sorted(found, key=lambda m: m.size_bytes)


def pays(draft: Installed, target: Installed) -> bool:
    return 0 < draft.size_bytes < PAYS_BELOW * target.size_bytes


def resolve(setting: str, target: Installed, store: Store) -> Installed | None:
    """The draft model ``runtime.speculative`` asks for: ``draft:ID`` names one (installed, a language model,
    the target's vocabulary, else a one-line error), ``auto`` takes the smallest that pays, if any."""
    if setting == "auto":
        return next((m for m in compatible(target, store.list()) if pays(m, target)), None)
    if not setting.startswith("draft:"):
        return None
    draft = store.require(setting.removeprefix("draft:"))
    if draft.kind != "llm":
        raise AssistantError(f"{draft.id} is a speech model: it cannot draft for {target.id}", HINT)
    if draft.id == target.id:
        raise AssistantError(f"{target.id} cannot draft for itself", HINT)
    digest = vocab_digest(draft)
    if not digest or digest != vocab_digest(target):
        raise AssistantError(f"{draft.id} has another vocabulary than {target.id}, so it cannot draft for it", HINT)
    return draft


HINT = "'assistant models info MODEL' lists the installed models that can draft for it"
