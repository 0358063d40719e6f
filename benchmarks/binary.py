"""The standalone app: how big it is and how fast it starts.

For the one-dir and the one-file app (packaging/build.sh [--onefile]): size on disk, wall time of
``--version`` (best of N runs: the floor that start-up costs, with the page cache warm) and of the TUI's
first paint (time until the terminal shows the footer, in a tmux pane; best of N). Every run is like the
user's: ``env -i`` with no python on PATH and a fresh ASSISTANT_HOME. Also records packaging/isa_check.sh's
verdict on the one-dir app (static; ``--qemu`` adds the runs under an emulated Haswell, a minute or two).

    python benchmarks/binary.py [--dist packaging/dist] [--runs 5] [--tui-runs 3] [--qemu]

Writes benchmarks/results/binary.json. A missing app is reported and skipped.
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
MB = 1_000_000
# The footer's quit binding is in the first frame Textual draws; anything earlier is the shell's blank pane.
FIRST_PAINT = "quit"
TUI_TIMEOUT = 60.0
POLL = 0.01  # capture-pane takes ~2 ms; 10 ms polling keeps the measurement's own error small


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def clean_env(home: Path) -> dict[str, str]:
    empty_bin = home / "empty-bin"
    empty_bin.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home / "home"),
        "PATH": str(empty_bin),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "ASSISTANT_HOME": str(home / "ah"),
    }


def time_version(binary: Path, env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([str(binary), "--version"], env=env, capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - start)
        if out.returncode != 0 or "version" not in out.stdout:
            raise RuntimeError(f"{binary} --version failed: {out.stderr.strip()[-300:]}")
    return times


def time_first_paint(binary: Path, env: dict[str, str], runs: int) -> list[float]:
    """Seconds from launching the TUI in a fresh tmux session to the footer being on screen."""
    times = []
    for i in range(runs):
        session = f"assistant-bench-{os.getpid()}-{i}"
        env_args = [f"{k}={v}" for k, v in env.items()]
        command = ["env", "-i", *env_args, str(binary)]
        start = time.perf_counter()
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "36", *command], check=True, timeout=30
        )
        try:
            while True:
                elapsed = time.perf_counter() - start
                screen = subprocess.run(
                    ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, timeout=10
                ).stdout
                if FIRST_PAINT in screen.lower():
                    times.append(elapsed)
                    break
                if elapsed > TUI_TIMEOUT or subprocess.run(["tmux", "has-session", "-t", session]).returncode:
                    raise RuntimeError(f"{binary}: no first paint within {TUI_TIMEOUT:.0f} s:\n{screen}")
                time.sleep(POLL)
        finally:
            subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], capture_output=True)
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and not subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode
            ):
                time.sleep(0.05)
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    return times


def isa_check(binary: Path, qemu: bool) -> dict[str, Any]:
    """packaging/isa_check.sh on the one-dir app: its PASS/FAIL lines and table, as the proof to keep."""
    command = ["bash", str(REPO / "packaging" / "isa_check.sh"), *([] if qemu else ["--no-qemu"]), str(binary)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    return {"passed": out.returncode == 0, "qemu": qemu, "output": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", type=Path, default=REPO / "packaging" / "dist", help="where build.sh put the apps")
    parser.add_argument("--runs", type=int, default=5, help="--version runs per app (best is reported)")
    parser.add_argument("--tui-runs", type=int, default=3, help="TUI launches per app (0 skips the TUI)")
    parser.add_argument("--qemu", action="store_true", help="include isa_check.sh's qemu runs")
    args = parser.parse_args()
    if args.tui_runs and not shutil.which("tmux"):
        parser.error("the TUI timing needs tmux (or pass --tui-runs 0)")

    apps = {"one-dir": args.dist / "assistant" / "assistant", "one-file": args.dist / "assistant-onefile"}
    rows: list[dict[str, Any]] = []
    for kind, binary in apps.items():
        if not binary.is_file():
            print(f"skipping {kind}: {binary} not built", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="assistant-bench-") as tmp:
            env = clean_env(Path(tmp))
            size = tree_size(binary.parent if kind == "one-dir" else binary)
            version = time_version(binary, env, args.runs)
            paint = time_first_paint(binary, env, args.tui_runs) if args.tui_runs else []
        rows.append(
            {
                "app": kind,
                "path": str(binary),
                "size_mb": round(size / MB, 1),
                "version_best_s": round(min(version), 3),
                "version_median_s": round(sorted(version)[len(version) // 2], 3),
                "tui_first_paint_best_s": round(min(paint), 3) if paint else None,
                "version_runs_s": [round(t, 3) for t in version],
                "tui_runs_s": [round(t, 3) for t in paint],
            }
        )
    if not rows:
        sys.exit("no app built: run packaging/build.sh --onefile first")
    print_table(rows, ["app", "size_mb", "version_best_s", "version_median_s", "tui_first_paint_best_s"])
    isa = isa_check(apps["one-dir"], args.qemu) if apps["one-dir"].is_file() else None
    if isa is not None:
        print(f"isa_check.sh: {'passed' if isa['passed'] else 'FAILED'}")
        print("\n".join(f"  {line}" for line in isa["output"] if line.startswith(("PASS", "FAIL", "llama_cpp/"))))
    path = write_json("binary", {"runs": args.runs, "tui_runs": args.tui_runs, "apps": rows, "isa_check": isa}, args)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
