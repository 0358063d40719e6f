"""Bad input to ``assistant serve``: each gets the right status and an OpenAI-style error body, never a
traceback; and the guards around it (API key, body size, a non-loopback bind without a key)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import assert_one_line_error, run_cli
from helpers.serve import API_KEY, SMOL, Served, serve_home, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(server: Served) -> httpx.Client:  # noqa: F811
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600)


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    assert "Traceback" not in response.text and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": SMOL, "messages": [{"role": "user", "content": "Hi."}], "max_tokens": 2, **fields}


def test_invalid_json(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b'{"model": ', headers={"Content-Type": "application/json"})
    assert "not valid JSON" in _error(response, 400)["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": -3}, "max_tokens"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"n": 2}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_wrong_types_and_values(http: httpx.Client, fields: dict[str, Any], param: str) -> None:
    error = _error(http.post("/v1/chat/completions", json=_chat(**fields)), 400)
    assert error["param"] == param, error


def test_unknown_model_names_the_pull_command(http: httpx.Client) -> None:
    error = _error(http.post("/v1/chat/completions", json=_chat(model="nosuch-model:q4_0")), 404)
    assert error["code"] == "model_not_found" and "assistant models pull nosuch-model:q4_0" in error["message"]


def test_empty_messages(http: httpx.Client) -> None:
    assert _error(http.post("/v1/chat/completions", json=_chat(messages=[])), 400)["param"] == "messages"


def test_prompt_over_the_context(http: httpx.Client) -> None:
    long = "word " * 3000  # the test server's context is 1024 tokens
    error = _error(http.post("/v1/chat/completions", json=_chat(messages=[{"role": "user", "content": long}])), 400)
    assert error["code"] == "context_length_exceeded", error
    error = _error(http.post("/v1/completions", json={"model": SMOL, "prompt": long, "max_tokens": 2}), 400)
    assert error["code"] == "context_length_exceeded", error


def test_a_50_mb_body_is_refused(http: httpx.Client) -> None:
    big = b'{"model": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    assert _error(http.post("/v1/chat/completions", content=big, headers={"Content-Type": "application/json"}), 413)


def test_an_invalid_json_schema(http: httpx.Client) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}
    error = _error(http.post("/v1/chat/completions", json=_chat(response_format=fmt)), 400)
    assert error["code"] == "invalid_schema" and error["param"] == "response_format"


def test_a_file_that_is_not_audio(http: httpx.Client) -> None:
    files = {"file": ("notes.wav", b"these are not samples, just text " * 50, "audio/wav")}
    error = _error(http.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}), 400)
    assert error["code"] == "invalid_audio" and "/tmp" not in error["message"], error


def test_unknown_route(http: httpx.Client) -> None:
    _error(http.get("/v1/nothing-here"), 404)


def test_missing_and_wrong_api_key(server: Served) -> None:  # noqa: F811
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}):
        response = httpx.get(server.url + "/v1/models", headers=headers)
        assert _error(response, 401)["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/api/tags", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_network_bind_needs_an_api_key() -> None:
    line = assert_one_line_error(run_cli("serve", "--host", "0.0.0.0", "--port", "1", env={"ASSISTANT_API_KEY": ""}))
    assert "--api-key" in line
