"""Shared bits for the benchmark scripts: where results go, a table printer, the chat benchmarks' options.

Every results file records where its numbers come from (``provenance``): the git commit (and whether the
tree had uncommitted changes), the exact command line, the parsed options, and the machine fingerprint
(``assistant.bench.fingerprint``). ``BENCH_RESULTS=DIR`` writes elsewhere than benchmarks/results (smoke
runs on a busy machine must not replace the published files); ``benchmarks/run_all.sh`` writes them all.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
if str(REPO) not in sys.path:  # the scripts run as ``python benchmarks/NAME.py`` from a checkout
    sys.path.insert(0, str(REPO))

# The chat benchmarks' request: one a small model answers at length, so greedy decoding reaches the
# token budget without an end token.
SYSTEM = "You are a helpful assistant."
PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a map. Use many chapters."


def chat_parser(doc: str | None, *, ctx: int) -> argparse.ArgumentParser:
    """The options every chat benchmark takes (a script adds its own)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="installed model id (default: the configured chat model)")
    parser.add_argument("--gguf", type=Path, help="a GGUF file instead of an installed model")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ctx", type=int, default=ctx)
    return parser


def chat_model(args: argparse.Namespace) -> tuple[Any, int, Any]:
    """(settings, threads, the installed model to run or None when --gguf names a file)."""
    from assistant import config
    from assistant.store import Store

    settings = config.load()
    threads = args.threads or settings.threads()
    item = None if args.gguf else Store().require(args.model or settings.models.chat)
    return settings, threads, item


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# The code that runs is the checkout's at start: a commit made while a long benchmark runs must not be credited.
# The results files themselves are left out: run_all.sh rewrites them one after another, and an earlier
# benchmark's fresh output must not mark the next one's code as modified.
_GIT_AT_START = (
    _git("rev-parse", "HEAD"),
    _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results"),
)


def provenance(options: argparse.Namespace | dict[str, Any] | None = None) -> dict[str, Any]:
    """Commit, command line, options and machine: enough to tell whether two results files are comparable."""
    from assistant.bench import fingerprint

    opts = vars(options) if isinstance(options, argparse.Namespace) else dict(options or {})
    threads = opts.get("threads")
    machine = fingerprint.collect(threads=threads if isinstance(threads, int) else None)
    commit, status = _GIT_AT_START
    return {
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "options": opts,
        "fingerprint": machine,
        "fingerprint_digest": fingerprint.digest(machine),
    }


def write_json(name: str, data: Any, options: argparse.Namespace | dict[str, Any] | None = None) -> Path:
    """Write results/NAME.json with its provenance (``options``: the parsed command-line arguments)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S"), **provenance(options), **data}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)
    return path


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def register(model_path: Path, model_id: str, home: Path) -> None:
    """Register ``model_path`` in a throwaway home (in a child, so this process's env stays untouched)."""
    code = (
        "import sys; from pathlib import Path; from assistant import gguf; "
        "from assistant.store import Installed, Store; p = Path(sys.argv[1]); "
        "Store().add(Installed(sys.argv[2], 'llm', p, False, p.stat().st_size, None, 'bench', "
        "info=gguf.read(p).summary()))"
    )
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    subprocess.run([sys.executable, "-c", code, str(model_path), model_id], env=env, check=True, cwd=REPO)
