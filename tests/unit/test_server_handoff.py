"""The llama thread's pieces reach the request's coroutine in order, joined, with one wake-up per batch."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from assistant.server.generation import DONE, Handoff, Usage


def _counting_wakes(loop: asyncio.AbstractEventLoop) -> list[int]:
    wakes = [0]
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any) -> Any:
        if isinstance(getattr(callback, "__self__", None), asyncio.Event):  # a hand-off's wake-up, not to_thread's
            wakes[0] += 1
        return real(callback, *args)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    return wakes


def test_what_arrived_meanwhile_comes_as_one_piece_without_a_wake_up() -> None:
    async def main() -> tuple[list[object], int]:
        loop = asyncio.get_running_loop()
        wakes = _counting_wakes(loop)
        handoff = Handoff(loop)
        usage = Usage(prompt_tokens=3, completion_tokens=1000)

        def produce() -> None:  # the whole reply before the coroutine looks (a busy event loop)
            for n in range(1000):
                handoff.put(f"{n} ")
            handoff.put(usage)
            handoff.put(DONE)

        thread = threading.Thread(target=produce)
        thread.start()
        thread.join()
        return [item async for item in handoff.pieces()], wakes[0]

    got, wakes = asyncio.run(main())
    assert got == ["".join(f"{n} " for n in range(1000)), Usage(prompt_tokens=3, completion_tokens=1000)]
    assert wakes == 0


def test_a_waiting_coroutine_is_woken_once_per_batch() -> None:
    async def main() -> tuple[list[object], int]:
        loop = asyncio.get_running_loop()
        wakes = _counting_wakes(loop)
        handoff = Handoff(loop)
        got: list[object] = []

        async def consume() -> None:
            async for item in handoff.pieces():
                got.append(item)

        task = asyncio.create_task(consume())
        for text in ("one ", "two "):
            await asyncio.sleep(0)  # the coroutine is waiting now
            await asyncio.to_thread(handoff.put, text)
            while text not in got:
                await asyncio.sleep(0)
        await asyncio.to_thread(handoff.put, DONE)
        await task
        return got, wakes[0]

    got, wakes = asyncio.run(main())
    assert got == ["one ", "two "] and wakes == 3  # one per put the coroutine waited for


def test_an_error_is_raised_after_the_text_before_it() -> None:
    async def main() -> list[object]:
        handoff = Handoff(asyncio.get_running_loop())
        for item in ("partial ", "text", RuntimeError("decode failed"), DONE):
            handoff.put(item)
        got: list[object] = []
        with pytest.raises(RuntimeError, match="decode failed"):
            async for item in handoff.pieces():
                got.append(item)
        return got

    assert asyncio.run(main()) == ["partial text"]
