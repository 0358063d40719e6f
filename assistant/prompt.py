"""From a conversation to the prompt a model evaluates: its text, its tokens, and which messages fit.

Pure functions: the model's tokenizer (a ``llama_cpp.Llama`` in the engine) and its compiled chat template
are passed in, so nothing here loads a model or keeps state between turns (the trim anchor goes in and comes
back out in the ``Plan``).

A model whose GGUF has no usable chat template (a base model) gets a plain ``User:``/``Assistant:``
transcript instead, and its reply stops at the next speaker tag (``COMPLETION_STOPS``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import template
from .chat import CancelToken, Message
from .errors import AssistantError

# Transcript speaker tags for completion mode; generation stops when the model starts the next turn.
USER_TAG = "User:"
ASSISTANT_TAG = "Assistant:"
COMPLETION_STOPS = ("\nUser:", "\nAssistant:")
# After trimming, keep this share of the context free so the next few turns can reuse the KV cache
# instead of re-trimming (which changes the prompt's start and forces a full re-evaluation).
TRIM_SLACK = 0.25
# Tokens a template may add around the messages (tags, separators) before a too-long prompt is its fault.
TEMPLATE_OVERHEAD = 256


class Tokenizer(Protocol):
    """What the prompt needs from a model: ``llama_cpp.Llama.tokenize``."""

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]: ...


@dataclass
class Plan:
    """A prompt ready to evaluate: its tokens, the messages it holds, how many old ones were dropped.

    ``anchor`` is the first message kept after the latest trim, to pass to the next turn's ``plan`` (it cuts
    at the same message while that still fits, so the prompt's start, and the KV cache, stay the same)."""

    tokens: list[int]
    messages: list[Message]
    dropped: int
    anchor: Message | None = None


def transcript(messages: list[Message]) -> str:
    """Completion-mode prompt: the system prompt as a preamble, then a User:/Assistant: transcript."""
    parts: list[str] = []
    for m in messages:
        if m.role == "system":
            parts.append(m.content.strip() + "\n")
        else:
            tag = USER_TAG if m.role == "user" else ASSISTANT_TAG
            parts.append(f"{tag} {m.content.strip()}")
    if messages and messages[-1].role == "assistant":
        return "\n".join(parts)  # continue the assistant's own text
    parts.append(ASSISTANT_TAG)
    return "\n".join(parts)


def render(
    messages: list[Message],
    compiled: Any,
    bos: str,
    eos: str,
    *,
    model_id: str,
    cancel: CancelToken | None = None,
) -> str:
    """The prompt text for ``messages``, ending where the assistant's reply begins: the compiled chat
    template (run under a time and size budget: ``template.chat_prompt``), or the transcript without one."""
    if compiled is None:
        return transcript(messages)
    return template.chat_prompt(compiled, messages, bos, eos, model_id=model_id, cancel=cancel)


def encode(text: str, tokenizer: Tokenizer, bos: int, *, special: bool) -> list[int]:
    """``text``'s tokens, starting with one BOS. ``special``: parse special tokens written as text, as chat
    templates write them (<|im_start|>...); a plain transcript must not turn a user's "<eos>" into a real
    end-of-sequence."""
    tokens = tokenizer.tokenize(text.encode("utf-8"), add_bos=True, special=special)
    if len(tokens) > 1 and tokens[0] == tokens[1] == bos:
        tokens = tokens[1:]  # the template wrote {{ bos_token }} and llama.cpp added one too
    return tokens


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens ``a`` and ``b`` start with alike: what a KV cache holding ``a`` keeps for ``b``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def stop_prefix_len(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could be the start of a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


def plan(
    messages: list[Message],
    prompt_tokens: Callable[[list[Message]], list[int]],
    tokenizer: Tokenizer,
    *,
    n_ctx: int,
    max_tokens: int,
    anchor: Message | None,
    model_id: str,
) -> Plan:
    """The prompt for ``messages`` (``prompt_tokens`` renders and encodes a list of them), trimmed to fit.

    The reply is guaranteed room for ``max_tokens`` tokens, or half the context if that is less (a
    max_tokens as large as the context would otherwise leave no room for any history). The system prompt
    and the newest message always stay. Turns are dropped whole (a user message and the replies after it)
    so role alternation, which strict templates check, is kept. A trim leaves some slack and remembers where
    it cut (``anchor``), so the next turns cut at the same message and keep reusing the KV cache instead of
    re-evaluating a prompt whose start moved.
    """
    reserve = min(max_tokens, n_ctx // 2)
    tokens = prompt_tokens(messages)
    budget = n_ctx - reserve
    if len(tokens) <= budget:
        return Plan(tokens, list(messages), 0, anchor)
    head = messages[:1] if messages[0].role == "system" else []
    rest = messages[len(head) :]
    starts = _turn_starts(rest)
    trimmed = _cut_at(head, rest, starts, anchor, prompt_tokens, budget)
    if trimmed is None:
        slack_budget = max(1, budget - int(n_ctx * TRIM_SLACK))
        trimmed = _cut_first_fitting(head, rest, starts, prompt_tokens, budget, slack_budget)
    if trimmed is None:
        raise _too_long(head, rest[-1:], prompt_tokens, tokenizer, n_ctx=n_ctx, reserve=reserve, model_id=model_id)
    return trimmed


def _turn_starts(rest: list[Message]) -> list[int]:
    """Where the prompt may start after the system prompt: a later user message, or else the newest one."""
    starts = [i for i, m in enumerate(rest) if i > 0 and m.role == "user"]
    if not starts or starts[-1] != len(rest) - 1:
        starts.append(len(rest) - 1)
    return starts


def _kept(head: list[Message], rest: list[Message], i: int, tokens: list[int]) -> Plan:
    return Plan(tokens, head + rest[i:], i, rest[i])


def _cut_at(
    head: list[Message],
    rest: list[Message],
    starts: list[int],
    anchor: Message | None,
    prompt_tokens: Callable[[list[Message]], list[int]],
    budget: int,
) -> Plan | None:
    """The cut of the previous trim, if it is still a turn start and still fits."""
    if anchor is None or anchor not in rest:
        return None
    i = rest.index(anchor)
    if i not in starts:
        return None
    candidate = prompt_tokens(head + rest[i:])
    return _kept(head, rest, i, candidate) if len(candidate) <= budget else None


def _cut_first_fitting(
    head: list[Message],
    rest: list[Message],
    starts: list[int],
    prompt_tokens: Callable[[list[Message]], list[int]],
    budget: int,
    slack_budget: int,
) -> Plan | None:
    """The earliest cut that leaves the slack free, or else the earliest that fits at all."""
    fallback: Plan | None = None
    for i in starts:
        candidate = prompt_tokens(head + rest[i:])
        if len(candidate) <= slack_budget:
            return _kept(head, rest, i, candidate)
        if fallback is None and len(candidate) <= budget:
            fallback = _kept(head, rest, i, candidate)
    return fallback


def _too_long(
    head: list[Message],
    newest_message: list[Message],
    prompt_tokens: Callable[[list[Message]], list[int]],
    tokenizer: Tokenizer,
    *,
    n_ctx: int,
    reserve: int,
    model_id: str,
) -> AssistantError:
    """Why even the system prompt (``head``) and the newest message do not fit: the message, or the template."""
    kept = head + newest_message
    newest = len(prompt_tokens(kept))
    own = sum(len(tokenizer.tokenize(m.content.encode(), add_bos=False, special=False)) for m in kept)
    if own + reserve + TEMPLATE_OVERHEAD <= n_ctx:  # the text fits: the template blew it up
        return AssistantError(
            f"{model_id}: the model's chat template makes a {newest}-token prompt out of {own} tokens"
            f" of conversation, more than the context holds ({n_ctx})",
            template.HINT,
        )
    return AssistantError(
        f"the message is too long for {model_id}'s context: it needs {newest} tokens"
        + (" with the system prompt" if head else "")
        + f" plus {reserve} for the reply, the context holds {n_ctx}",
        "shorten it, lower --max-tokens, or raise --ctx",
    )
