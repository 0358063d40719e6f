"""Wall time of everyday commands, best of N, each in a fresh process (target: `--help` < 0.15 s).

python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

COMMANDS = [
    ["--help"],
    ["--version"],
    ["models", "list"],
    ["models", "list", "--json"],
    ["models", "info", "smollm2-135m-instruct:q4_1", "--json"],
]


def time_command(exe: list[str], args: list[str], runs: int) -> dict[str, float | int | str]:
    times = []
    code = 0
    for _ in range(runs):
        start = time.perf_counter()
        code = subprocess.run([*exe, *args], capture_output=True).returncode
        times.append(time.perf_counter() - start)
    times.sort()
    return {
        "command": "assistant " + " ".join(args),
        "best_s": times[0],
        "median_s": times[len(times) // 2],
        "exit": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    exe = [shutil.which("assistant") or str(Path(sys.executable).parent / "assistant")]
    rows = [time_command(exe, command, args.runs) for command in COMMANDS]
    print_table(rows, ["command", "best_s", "median_s", "exit"])
    print("results:", write_json("cli_startup", {"runs": args.runs, "rows": rows}, args))


if __name__ == "__main__":
    main()
