"""The hub settings the README promises: ``models.hub_endpoint`` in config.toml points a pull at a mirror, and
``HF_HUB_OFFLINE=1`` is in the environment before huggingface-hub is first imported (it reads it once, then).

Both run the real CLI in a fresh process against the local test hub (tests/helpers/hf_server.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.hf_server import HubServer
from helpers.pull import HUB_REPO, SMOL_FILE, cli_env, hub_catalog, make_hub_root, model_files, run_cli

# Refuses connections: where $HF_ENDPOINT points when the test checks that config.toml wins over it.
DEAD_ENDPOINT = "http://127.0.0.1:9"


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = make_hub_root(tmp_path_factory.mktemp("endpoint-hub"))
    with HubServer(root) as server:
        yield server


def _home(tmp_path: Path, config: str) -> Path:
    home = tmp_path / "hub-home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "models.toml").write_text(hub_catalog(), encoding="utf-8")
    (home / "config" / "config.toml").write_text(config, encoding="utf-8")
    return home


@pytest.mark.parametrize("env_endpoint", [None, DEAD_ENDPOINT], ids=["no HF_ENDPOINT", "HF_ENDPOINT elsewhere"])
def test_a_pull_uses_the_hub_endpoint_from_config(hub: HubServer, tmp_path: Path, env_endpoint: str | None) -> None:
    """No --endpoint: the URL in config.toml is the one pulled from (and it wins over $HF_ENDPOINT)."""
    home = _home(tmp_path, f'[models]\nhub_endpoint = "{hub.url}"\n')
    extra = {"HF_ENDPOINT": env_endpoint} if env_endpoint else {}
    result = run_cli(["models", "pull", "smol-hub:q4_1"], home, env=extra)
    assert result.returncode == 0, result.stderr
    assert any(r.path.endswith(f"/{HUB_REPO}/resolve/main/{SMOL_FILE}") for r in hub.gets()), hub.requests
    assert [p.name for p in model_files(home)] == [SMOL_FILE]


def test_without_the_setting_the_pull_does_not_reach_that_hub(hub: HubServer, tmp_path: Path) -> None:
    """The control: the same pull with no endpoint configured goes elsewhere (huggingface.co, unreachable
    here) and never reaches the test hub, so the test above cannot pass by default."""
    home = _home(tmp_path, "")
    result = run_cli(["models", "pull", "smol-hub:q4_1"], home, HF_ENDPOINT=DEAD_ENDPOINT)
    assert result.returncode != 0
    assert hub.requests == []


# Runs the CLI with an import hook that notes the environment at the moment huggingface_hub is imported.
_WATCH = r"""
import atexit, json, os, sys

seen = {}


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "huggingface_hub" and "offline" not in seen:
            seen["offline"] = os.environ.get("HF_HUB_OFFLINE")
            seen["telemetry"] = os.environ.get("HF_HUB_DISABLE_TELEMETRY")
        return None


def report():
    hub = sys.modules.get("huggingface_hub.constants")
    seen["constant"] = None if hub is None else hub.HF_HUB_OFFLINE
    with open(os.environ["WATCH_OUT"], "w") as fh:
        json.dump(seen, fh)


sys.meta_path.insert(0, Watch())
atexit.register(report)
if os.environ.get("WATCH_IMPORT_HUB_FIRST"):
    import huggingface_hub  # noqa: F401
sys.argv = ["assistant", *json.loads(os.environ["WATCH_ARGS"])]
from assistant.cli import main

main()
"""


def _watched(args: list[str], home: Path, tmp_path: Path, **extra: str) -> tuple[int, dict[str, object]]:
    out = tmp_path / "watch.json"
    env = cli_env(home, WATCH_OUT=str(out), WATCH_ARGS=json.dumps(args), **extra)
    for key in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):  # else the test would pass vacuously
        env.pop(key, None)
    result = subprocess.run([sys.executable, "-c", _WATCH], env=env, capture_output=True, text=True, timeout=600)
    assert out.exists(), result.stderr
    return result.returncode, json.loads(out.read_text())


def test_hf_hub_offline_is_set_before_huggingface_hub_is_imported(hub: HubServer, tmp_path: Path) -> None:
    """A hub pull imports huggingface-hub: at that moment HF_HUB_OFFLINE=1 is already set, so its constants
    start offline (the pull lifts offline mode only inside its own call, and restores it after)."""
    home = _home(tmp_path, "")
    code, seen = _watched(["models", "pull", "smol-hub:q4_1", "--endpoint", hub.url], home, tmp_path)
    assert code == 0
    assert "offline" in seen, "the pull never imported huggingface_hub: nothing was checked"
    assert seen["offline"] == "1" and seen["telemetry"] == "1", seen
    assert seen["constant"] is True, seen  # offline again after the pull


def test_the_import_watch_sees_an_early_import(tmp_path: Path) -> None:
    """The control: huggingface-hub imported before the app is seen without HF_HUB_OFFLINE."""
    code, seen = _watched(["--version"], tmp_path / "home", tmp_path, WATCH_IMPORT_HUB_FIRST="1")
    assert code == 0
    assert seen["offline"] is None, seen
