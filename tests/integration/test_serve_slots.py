"""``--parallel`` and the queue: past the slots and the queue a request gets 429 with Retry-After, a client
that disconnects mid-stream frees its slot (and generation stops), concurrent clients get the single-client
replies, and ``keep_alive: 0`` unloads the model after the request."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import run_cli, wait_until
from helpers.serve import API_KEY, SMOL, Served, serve_home, server, start  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_slot(serve_home: Path) -> Iterator[Served]:  # noqa: F811
    """A second server, one slot and no queue, on loopback without a key."""
    served = start(serve_home, "--parallel", "1", "--queue", "0", key=None)
    yield served
    assert served.stop() == 0, served.log.read_text()


def _health(served: Served) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(served.get("/health"))
    return doc


def _chat(max_tokens: int, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Tell me a long story about a dragon."}]
    return {"model": SMOL, "messages": messages, "max_tokens": max_tokens, "temperature": 0, **extra}


def test_full_means_429_and_a_disconnect_frees_the_slot(one_slot: Served) -> None:
    with httpx.Client(base_url=one_slot.url, timeout=600) as http:
        with http.stream("POST", "/v1/chat/completions", json=_chat(900, stream=True)) as stream:
            lines = stream.iter_lines()
            while '"content": ""' in next(lines) or not _health(one_slot)["generated"]:
                pass  # until the reply is streaming
            busy = http.post("/v1/chat/completions", json=_chat(2))
            assert busy.status_code == 429, busy.text
            assert busy.headers["retry-after"] == "1" and busy.json()["error"]["type"] == "rate_limit_error"
        # the client left mid-reply: its slot comes back, and the model stops generating for it
        wait_until(lambda: _health(one_slot)["in_flight"] == 0, 120, "the abandoned request to free its slot")
        before = _health(one_slot)["generated"]
        reply = http.post("/v1/chat/completions", json=_chat(3))
        assert reply.status_code == 200, reply.text
        assert _health(one_slot)["generated"] <= before + 3  # nothing more came from the abandoned stream
    assert before < 900


def test_ps_lists_what_the_server_has_loaded(one_slot: Served) -> None:
    assert httpx.post(one_slot.url + "/v1/chat/completions", json=_chat(1), timeout=600).status_code == 200
    result = run_cli("ps", "--json", env={"ASSISTANT_HOME": str(one_slot.home)})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["server"] == one_slot.url and out["pid"] == one_slot.process.pid
    (model,) = out["models"]
    assert model["id"] == SMOL and model["size_bytes"] > 50_000_000 and model["memory_bytes"] > model["size_bytes"]
    assert model["idle_s"] >= 0
    table = run_cli("ps", env={"ASSISTANT_HOME": str(one_slot.home)})
    assert SMOL in table.stdout and "MEMORY" in table.stdout, table.stdout


def test_keep_alive_zero_unloads_after_the_request(one_slot: Served) -> None:
    body = {"model": SMOL, "prompt": "Hi.", "stream": False, "keep_alive": 0, "options": {"num_predict": 1}}
    assert httpx.post(one_slot.url + "/api/generate", json=body, timeout=600).status_code == 200
    assert json.loads(one_slot.get("/api/ps"))["models"] == []


def test_concurrent_clients_get_the_single_client_replies(server: Served) -> None:  # noqa: F811
    """Eight at once against two slots and a queue of two: each completes or gets 429, and the replies at
    temperature 0 are the one a lone client gets (requests take turns on the model; none sees another's KV)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def ask(_: int) -> httpx.Response:
        return httpx.post(server.url + "/v1/chat/completions", json=_chat(6), headers=headers, timeout=600)

    alone = ask(0).json()["choices"][0]["message"]["content"]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(ask, range(8)))
    assert {r.status_code for r in responses} <= {200, 429}, [r.text for r in responses]
    done = [r.json()["choices"][0]["message"]["content"] for r in responses if r.status_code == 200]
    assert len(done) >= 4 and set(done) == {alone}
    assert _health(server)["in_flight"] == 0


def test_ctrl_c_ends_running_streams_cleanly(serve_home: Path) -> None:  # noqa: F811
    """Ctrl+C mid-reply: the reply stops at its current token and its stream still ends properly (a final chunk
    and [DONE]); the server exits 0 with no traceback and removes its state file."""
    served = start(serve_home, key=None)
    with httpx.stream("POST", served.url + "/v1/chat/completions", json=_chat(900, stream=True), timeout=600) as s:
        lines = s.iter_lines()
        while '"content": ""' in (line := next(lines)) or not line.startswith("data: {"):
            pass  # until the reply is streaming
        served.process.send_signal(signal.SIGINT)
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]", rest[-3:]
    finish = json.loads(rest[-2][6:])["choices"][0]["finish_reason"]
    assert finish == "stop" and len(rest) < 900
    assert served.process.wait(timeout=120) == 0
    log = served.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log and "stopped" in log, log
