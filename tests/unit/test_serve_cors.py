"""``assistant serve --cors ORIGIN``: CORS is off unless asked for, and then open to the named origins only.

The app runs in-process (Starlette's TestClient); no model is loaded: /v1/models only lists the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from assistant.server.app import ServerConfig, create_app

from conftest import assert_one_line_error, run_cli

PAGE = "http://localhost:3000"
KEY = "cors-test-key"


@pytest.fixture
def client_for(assistant_home: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**config: object) -> TestClient:
        client = TestClient(create_app(ServerConfig(**config)))  # type: ignore[arg-type]  # the fields, by name
        client.__enter__()  # runs the lifespan
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def preflight(client: TestClient, origin: str) -> Any:
    return client.options(
        "/v1/models",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_cors_is_off_by_default(client_for: Callable[..., TestClient]) -> None:
    client = client_for()
    response = client.get("/v1/models", headers={"Origin": PAGE})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers  # a browser page cannot read the reply
    assert "access-control-allow-origin" not in preflight(client, PAGE).headers


def test_a_named_origin_may_call_the_api_and_no_other(client_for: Callable[..., TestClient]) -> None:
    client = client_for(cors=(PAGE,))
    ok = preflight(client, PAGE)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == PAGE
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    response = client.get("/v1/models", headers={"Origin": PAGE})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == PAGE
    other = preflight(client, "http://evil.example")
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert (
        "access-control-allow-origin" not in client.get("/v1/models", headers={"Origin": "http://evil.example"}).headers
    )


def test_the_preflight_passes_without_the_key_but_the_request_does_not(client_for: Callable[..., TestClient]) -> None:
    """A browser sends the preflight without credentials: it is answered, and the real call still needs the key."""
    client = client_for(cors=(PAGE,), api_key=KEY)
    assert preflight(client, PAGE).status_code == 200
    denied = client.get("/v1/models", headers={"Origin": PAGE})
    assert denied.status_code == 401 and denied.json()["error"]["message"]
    allowed = client.get("/v1/models", headers={"Origin": PAGE, "Authorization": f"Bearer {KEY}"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == PAGE


def test_a_cors_value_that_is_not_an_origin_is_refused(assistant_home: Path) -> None:
    result = run_cli("serve", "--cors", "localhost:3000/app", "--port", "0")
    line = assert_one_line_error(result)
    assert "--cors 'localhost:3000/app' is not an origin" in line and "scheme://host" in line
