"""`assistant models import|info|list|rm|use|verify|du` through the real CLI, and its bad inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from assistant import paths

from conftest import GEMMA, SMOL, WHISPER, assert_one_line_error, llama_cpp_load, run_cli


def _installed_ids() -> list[str]:
    result = run_cli("models", "list", "--installed", "--json")
    assert result.returncode == 0, result.stderr
    return [m["id"] for m in json.loads(result.stdout)["models"]]


def test_import_in_place_recognises_catalog_file(starter_files: dict[str, Path]) -> None:
    result = run_cli("models", "import", str(starter_files[SMOL]), "--json")
    assert result.returncode == 0, result.stderr
    item = json.loads(result.stdout)
    assert item["id"] == SMOL  # same sha256 as the catalog entry
    assert item["managed"] is False
    assert item["path"] == str(starter_files[SMOL])
    assert _installed_ids() == [SMOL]


def test_import_copy_then_rm_deletes_only_the_copy(starter_files: dict[str, Path]) -> None:
    result = run_cli("models", "import", str(starter_files[GEMMA]), "--copy", "--id", "mine:q4", "--json")
    assert result.returncode == 0, result.stderr
    copied = Path(json.loads(result.stdout)["path"])
    assert copied.is_file() and copied.is_relative_to(paths.models_dir())
    assert run_cli("models", "rm", "mine:q4").returncode == 0
    assert not copied.exists()
    assert starter_files[GEMMA].exists()
    assert _installed_ids() == []


def test_import_whisper_folder(starter_files: dict[str, Path]) -> None:
    result = run_cli("models", "import", str(starter_files[WHISPER]), "--id", "whisper-x:int8", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "whisper"


@pytest.mark.slow
def test_info_reports_header_fields(starter_files: dict[str, Path]) -> None:
    """The header fields ``models info`` shows are the ones llama.cpp reads from the same file."""
    from assistant import fit

    result = run_cli("models", "info", str(starter_files[GEMMA]), "--json", "--ctx", "8192")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    loaded = llama_cpp_load(starter_files[GEMMA], n_ctx=512)
    meta = loaded.metadata
    arch = meta["general.architecture"]
    assert data["architecture"] == arch == "gemma3"
    assert data["parameters"] == loaded.n_params
    assert data["quant"] == "Q4_K_M" and meta["general.file_type"] == "15"  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert data["context_length"] == int(meta[f"{arch}.context_length"])
    assert data["layers"] == int(meta[f"{arch}.block_count"])
    assert data["heads"] == int(meta[f"{arch}.attention.head_count"])
    assert data["license"] == meta["general.license"]
    assert data["chat_template"] is False and "tokenizer.chat_template" not in meta  # a base model
    memory = data["memory"]
    assert memory["context"] == 8192 and memory["weights"] == data["data_size"]
    assert memory["total"] == sum(memory[k] for k in ("weights", "kv_cache", "compute", "overhead"))
    assert data["fit"] == fit.verdict(memory["total"], available=memory["available"])
    text = run_cli("models", "info", str(starter_files[SMOL]), "--verbose")
    assert "kv cache" in text.stdout and "chat template" in text.stdout


def test_info_on_catalog_id_not_installed() -> None:
    result = run_cli("models", "info", GEMMA, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["installed"] is False


def test_list_shows_fit_and_ctx_changes_it(installed_models: dict[str, object]) -> None:
    small = json.loads(run_cli("models", "list", "--json", "--ctx", "512").stdout)
    large = json.loads(run_cli("models", "list", "--json", "--ctx", "8192").stdout)
    est = {m["id"]: m["estimate_bytes"] for m in small["models"]}
    est_large = {m["id"]: m["estimate_bytes"] for m in large["models"]}
    assert est_large[SMOL] > est[SMOL]
    assert all(m["fit"] in ("fits", "tight", "won't fit") for m in small["models"] if m["status"] == "installed")
    # a catalog entry without a known size has no verdict rather than a made-up one
    assert all(m["fit"] == "unknown" for m in small["models"] if m["size_bytes"] is None)


@pytest.fixture
def bad_inputs(starter_files: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    truncated = tmp_path / "truncated.gguf"
    with open(starter_files[SMOL], "rb") as fh:
        truncated.write_bytes(fh.read(1 << 20))
    random = tmp_path / "random.gguf"
    random.write_bytes(os.urandom(1 << 16))
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.gguf"
    folder.mkdir()
    return {
        "truncated": truncated,
        "random": random,
        "empty": empty,
        "directory": folder,
        "missing": tmp_path / "missing.gguf",
    }


# What is wrong with each bad file, as the error line must say it (import, info).
BAD_FILE_REASONS = {
    "truncated": ("not a valid GGUF file", "not a valid GGUF file"),
    "random": ("not a valid GGUF file: bad magic", "not a valid GGUF file: bad magic"),
    "empty": ("empty file, not a GGUF model", "empty file, not a GGUF model"),
    "directory": ("a folder, but not a CTranslate2 whisper model", "is a directory, not a GGUF file"),
    "missing": ("no such file or folder", "no such file"),
}


@pytest.mark.parametrize("case", list(BAD_FILE_REASONS))
@pytest.mark.parametrize("command", ["import", "info"])
def test_bad_files_are_one_line_errors_and_install_nothing(
    bad_inputs: dict[str, Path], case: str, command: str
) -> None:
    line = assert_one_line_error(run_cli("models", command, str(bad_inputs[case])))
    reason = BAD_FILE_REASONS[case][command == "info"]
    assert line.startswith(f"error: {bad_inputs[case]}: {reason}"), line
    assert line.endswith(")"), line  # and what to do about it, in parentheses
    assert _installed_ids() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("models", "info", "../../x"), "error: ../../x: no such file (check the path)"),  # a path, not an id
        (("models", "rm", "../../x"), "error: invalid model id '../../x' (ids look like 'family:tag'"),
        (("models", "use", "x:../y"), "error: invalid model id 'x:../y' (ids look like 'family:tag'"),
    ],
)
def test_bad_ids_are_refused(args: tuple[str, ...], expected: str) -> None:
    line = assert_one_line_error(run_cli(*args))
    assert line.startswith(expected), line


def test_use_sets_default(installed_models: dict[str, object]) -> None:
    assert run_cli("models", "use", GEMMA).returncode == 0
    listing = json.loads(run_cli("models", "list", "--json").stdout)["models"]
    assert {m["id"] for m in listing if m["default"]} == {GEMMA, WHISPER}
    assert_one_line_error(run_cli("models", "use", "qwen9-1b:q4"))


def test_verify_detects_corruption(starter_files: dict[str, Path], copy_model) -> None:
    copy = copy_model(starter_files[SMOL], "copy.gguf")
    assert run_cli("models", "import", str(copy), "--id", "copy:q4_1").returncode == 0
    assert run_cli("models", "verify").returncode == 0
    with open(copy, "r+b") as fh:
        fh.seek(50_000_000)
        byte = fh.read(1)
        fh.seek(50_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    result = run_cli("models", "verify", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)[0]["status"] == "corrupt"


def test_du_json(installed_models: dict[str, object]) -> None:
    result = run_cli("models", "du", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {m["id"] for m in data["models"]} == {SMOL, GEMMA, WHISPER}
    assert "partial_downloads" in data and "wheel_cache" in data
