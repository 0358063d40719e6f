"""The one way to run a benchmark: ``assistant bench``, the TUI's re-run and any other front call ``plan``
then ``run``.

It settles what every front would otherwise repeat (and let drift): which installed variants the ids name
(a family name means all of its installed variants), that speech and language models are never mixed, and
which measurement to dispatch to (``speech.run`` for whisper, ``llm.run`` for GGUF). The fronts only choose
the options and show the progress.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AssistantError

if TYPE_CHECKING:
    from ..store import Store
    from .results import Run
    from .verdict import Budget

Progress = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Options:
    """What a front chooses for a run. Speech runs have no context size, so they ignore ``ctx``."""

    quick: bool = False
    reps: int | None = None  # None: 3 repetitions, or 1 with ``quick``
    threads: int = 1
    ctx: int = 4096
    # Language models only: your own tasks and text, runtime settings to sweep, the verdict's budget.
    tasks_file: str | None = None
    text_file: str | None = None
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    speculative: bool = False  # the lookup column (``spec.py``)
    budget: Budget | None = None

    @property
    def repetitions(self) -> int:
        return self.reps or (1 if self.quick else 3)


@dataclass(frozen=True)
class Plan:
    """What a run will measure, checked before any work starts (a front can say what is wrong at once)."""

    ids: tuple[str, ...]
    reference: str | None
    kind: str  # whisper or llm
    store: Store


def plan(ids: Sequence[str], reference: str | None = None, store: Store | None = None) -> Plan:
    """The installed variants ``ids`` name, and their one kind (a model not installed fails here, naming it)."""
    from ..store import Store as _Store

    registry = store or _Store()
    expanded = expand_families(ids, registry)
    kinds = {registry.require(i).kind for i in (*expanded, *([reference] if reference else []))}
    if len(kinds) > 1:
        raise AssistantError("speech and language models can't be benchmarked together", "run them separately")
    return Plan(expanded, reference, next(iter(kinds), "llm"), registry)  # nothing named: llm.run says so


def run(planned: Plan, *, options: Options, progress: Progress | None = None, cancel: Any = None) -> Run:
    """Measure ``planned`` (each variant in its own child process); return the run, not yet saved.
    ``progress(model_id, event)`` sees every worker event; ``cancel.cancelled`` stops the run."""
    ids, reference, store = planned.ids, planned.reference, planned.store
    if planned.kind == "whisper":
        from . import speech

        # --threads N is for speech too; lists, the KV cache, flash attention and batches are not
        swept = {k for k, v in options.sweep.items() if k != "threads" or len(v) > 1}
        if options.tasks_file or options.text_file or swept or options.speculative:
            raise AssistantError(
                "--tasks, --text, --speculative and setting lists are for language models",
                "benchmark speech without them",
            )

        opts = speech.Options(reps=options.repetitions, quick=options.quick, threads=options.threads)
        return speech.run(ids, options=opts, reference=reference, store=store, progress=progress, cancel=cancel)
    from . import llm

    opts_llm = llm.Options(
        reps=options.repetitions,
        quick=options.quick,
        threads=options.threads,
        ctx=options.ctx,
        tasks_file=options.tasks_file,
        text_file=options.text_file,
        sweep=options.sweep,
        speculative=options.speculative,
        **{k: v[0] for k, v in options.sweep.items() if k != "threads" and v},
    )
    return llm.run(
        ids,
        options=opts_llm,
        reference=reference,
        store=store,
        progress=progress,
        cancel=cancel,
        budget=options.budget,
    )


def expand_families(ids: Sequence[str], store: Store) -> tuple[str, ...]:
    """A bare family name means every installed variant of it (``bench smollm2-135m-instruct``)."""
    out: list[str] = []
    for model_id in ids:
        family = model_id.strip().lower()
        variants = [] if ":" in family else [m.id for m in store.list() if m.id.split(":", 1)[0] == family]
        for found in variants or [model_id]:
            if found not in out:
                out.append(found)
    return tuple(out)
