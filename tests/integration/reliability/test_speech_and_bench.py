"""Hostile input for speech (damaged whisper folders, lying WAVs, odd options, no microphone, no espeak-ng)
and for bench / quantize (unknown types, existing targets, bad run ids, unwritable plot paths).

Each case is what a new user could do. A refusal is one ``error:`` line with a non-zero exit; nothing is
half-written or installed; nothing native aborts (rc 134/139); nothing hangs (``run_cli``'s timeout is
only a guard against a hang, never a speed limit). Real models come from the ``installed_models`` /
``starter_files`` fixtures; damaged folders are copies of the real whisper folder, made in the test.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SMOL, WHISPER, assert_one_line_error, run_cli

CLIP = REPO / "assistant" / "data" / "speech" / "fox.wav"


def _no_native_abort(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode not in (134, 139, -6, -11), result


# -- speech: damaged whisper folders -------------------------------------------------------------------------


def _damage(folder: Path, how: str) -> None:
    if how == "no-model-bin":
        (folder / "model.bin").unlink()
    elif how == "model-bin-half":
        model = folder / "model.bin"
        os.truncate(model, model.stat().st_size // 2)
    elif how == "model-bin-stub":
        (folder / "model.bin").write_bytes(b"\0" * 1000)
    elif how == "config-garbage":
        (folder / "config.json").write_text("garbage{{")
    elif how == "config-not-object":
        (folder / "config.json").write_text("[1, 2]")
    elif how == "vocabulary-garbage":
        (folder / "vocabulary.txt").write_bytes(bytes(range(256)) * 20)
    elif how == "tokenizer-garbage":
        (folder / "tokenizer.json").write_text("not json")
    else:  # pragma: no cover
        raise AssertionError(how)


DAMAGE = [
    # (how, what the error line must name)
    ("model-bin-half", "invalid payload size"),
    ("model-bin-stub", "model.bin"),
    ("config-garbage", "config.json"),
    ("config-not-object", "config.json"),
    ("vocabulary-garbage", "vocabulary.txt"),
    ("tokenizer-garbage", "tokenizer.json"),
]


@pytest.mark.parametrize(("how", "needle"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_whisper_folder_is_one_line_not_an_abort(
    starter_files: dict[str, Path], tmp_path: Path, how: str, needle: str
) -> None:
    folder = tmp_path / "whisper-tiny.en"
    shutil.copytree(starter_files[WHISPER], folder)
    _damage(folder, how)
    assert run_cli("models", "import", str(folder), "--id", "broken-whisper:int8").returncode == 0
    result = run_cli("transcribe", "-m", "broken-whisper:int8", str(CLIP))
    _no_native_abort(result)
    line = assert_one_line_error(result)
    assert needle in line and "broken-whisper:int8" in line and "damaged" in line, line
    assert result.stdout == ""  # no transcript, not even an empty one


def test_whisper_folder_without_model_bin_is_refused_at_import(starter_files: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "whisper-tiny.en"
    shutil.copytree(starter_files[WHISPER], folder)
    _damage(folder, "no-model-bin")
    line = assert_one_line_error(run_cli("models", "import", str(folder), "--id", "broken-whisper:int8"))
    assert "model.bin" in line
    assert "broken-whisper" not in run_cli("models", "list").stdout  # nothing registered


# -- speech: lying or odd audio ------------------------------------------------------------------------------


def _wav(path: Path, pcm: bytes, *, channels: int = 1, rate: int = 16000, data_len: int | None = None) -> Path:
    """A 16-bit PCM WAV whose header says what we tell it to (true or not)."""
    size = len(pcm) if data_len is None else data_len
    block = max(channels, 1) * 2
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
    header = b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVEfmt " + fmt
    path.write_bytes(header + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + pcm)
    return path


def _pcm() -> bytes:
    return CLIP.read_bytes()[44:]  # the clip is a canonical 44-byte-header 16 kHz mono WAV


def test_wav_header_announcing_4_gb_transcribes_what_is_there(installed_models: dict, tmp_path: Path) -> None:
    result = run_cli("transcribe", str(_wav(tmp_path / "huge.wav", _pcm(), data_len=0xFFFFFFF0)))
    assert result.returncode == 0, result.stderr
    assert "lazy dog" in result.stdout.lower()


@pytest.mark.parametrize(("field", "value"), [("channels", 0), ("rate", 0)])
def test_wav_header_with_zero_channels_or_rate_is_one_line(
    installed_models: dict, tmp_path: Path, field: str, value: int
) -> None:
    bad = _wav(tmp_path / "bad.wav", _pcm(), **{field: value})
    result = run_cli("transcribe", str(bad))
    _no_native_abort(result)
    assert str(bad) in assert_one_line_error(result)
    assert result.stdout == ""


def test_a_tenth_of_a_second_clip_is_an_empty_transcript(installed_models: dict, tmp_path: Path) -> None:
    result = run_cli("transcribe", "--json", str(_wav(tmp_path / "short.wav", _pcm()[:3200])))
    assert result.returncode == 0, result.stderr
    assert '"duration": 0.1' in result.stdout


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox")
def test_ten_minutes_of_silence_finishes_with_an_empty_transcript(installed_models: dict, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", "600"], check=True)
    result = run_cli("transcribe", str(silence))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(("code", "needle"), [("xx", "unknown language code 'xx'"), ("", "unknown language"),
                                              ("de", "English only")])  # fmt: skip
def test_bad_language_is_one_line(installed_models: dict, code: str, needle: str) -> None:
    result = run_cli("transcribe", "--language", code, str(CLIP))
    assert needle in assert_one_line_error(result)
    assert result.stdout == ""


def test_transcribe_out_into_a_missing_folder_creates_it(installed_models: dict, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper"
    result = run_cli("transcribe", "--out", str(out), str(CLIP))
    assert result.returncode == 0, result.stderr
    assert "lazy dog" in (out / "fox.txt").read_text().lower()
    assert sorted(p.name for p in out.iterdir()) == ["fox.txt"]  # no temp file left beside it


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_transcribe_out_that_is_not_a_folder_is_one_line(installed_models: dict, tmp_path: Path, where: str) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    out = a_file if where == "a-file" else a_file / "sub"
    line = assert_one_line_error(run_cli("transcribe", "--out", str(out), str(CLIP)))
    assert str(out) in line
    assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "notes.txt"]


# -- speech: say, dictate, talk ------------------------------------------------------------------------------


def _path_without_espeak(tmp_path: Path) -> str:
    """A PATH with everything /usr/bin and /bin have except espeak-ng / espeak."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/bin", "/bin"):
        for exe in Path(folder).iterdir():
            if exe.name not in ("espeak-ng", "espeak") and not (bin_dir / exe.name).exists():
                (bin_dir / exe.name).symlink_to(exe)
    return str(bin_dir)


@pytest.mark.parametrize("out", [False, True])
def test_say_without_espeak_is_one_line(tmp_path: Path, out: bool) -> None:
    args = ["say", "hello"] + (["--out", str(tmp_path / "x.wav")] if out else [])
    line = assert_one_line_error(run_cli(*args, env={"PATH": _path_without_espeak(tmp_path)}))
    assert "espeak-ng is not installed" in line and "speak_replies" not in line  # `say` has no setting to blame
    assert not (tmp_path / "x.wav").exists()


def test_say_a_huge_text_is_refused_at_once(tmp_path: Path) -> None:
    out = tmp_path / "long.wav"
    words = ["speech"] * 60_000  # 420 KB over many arguments (1 MB does not fit in argv: E2BIG from the kernel)
    line = assert_one_line_error(run_cli("say", "--out", str(out), *words))
    assert "too long" in line
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]  # no WAV, no .partial


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_say_with_control_characters_writes_a_wav(tmp_path: Path) -> None:
    out = tmp_path / "ctl.wav"
    result = run_cli("say", "--out", str(out), "\x1b[31mred\x07 alert\x1b]0;title\x07")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"RIFF"
    assert "\x1b" not in result.stdout + result.stderr


def test_say_only_control_characters_is_one_line(tmp_path: Path) -> None:
    assert "nothing to say" in assert_one_line_error(run_cli("say", "\x1b\x07"))


def _has_microphone() -> bool:
    from assistant.audio import input_devices
    from assistant.errors import AssistantError

    try:
        return bool(input_devices())
    except AssistantError:
        return False


@pytest.mark.skipif(_has_microphone(), reason="this machine has a microphone")
@pytest.mark.parametrize("command", [["dictate"], ["dictate", "--max-seconds", "1"], ["talk"]])
def test_no_microphone_is_one_line(installed_models: dict, command: list[str]) -> None:
    assert "no microphone" in assert_one_line_error(run_cli(*command))


@pytest.mark.parametrize("command", ["dictate", "talk"])
def test_dictate_file_that_is_not_audio_is_one_line(installed_models: dict, tmp_path: Path, command: str) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("hello this is text\n" * 100)
    result = run_cli(command, "--file", str(text))
    assert str(text) in assert_one_line_error(result)
    assert result.stdout == ""


# -- quantize ------------------------------------------------------------------------------------------------


def _model_files(home: Path) -> list[Path]:
    models = home / "data" / "models"
    return sorted(p for p in models.rglob("*") if p.is_file()) if models.exists() else []


@pytest.mark.parametrize(("to", "needle"), [("q9_9", "unknown quantization type 'q9_9'"), ("", "no target type"),
                                            (",", "no target type")])  # fmt: skip
def test_quantize_to_a_bad_type_is_one_line(installed_models: dict, assistant_home: Path, to: str, needle: str) -> None:
    assert needle in assert_one_line_error(run_cli("models", "quantize", SMOL, "--to", to))
    assert _model_files(assistant_home) == []


def test_quantize_a_whisper_model_is_one_line(installed_models: dict, assistant_home: Path) -> None:
    assert "whisper" in assert_one_line_error(run_cli("models", "quantize", WHISPER, "--to", "q8_0"))
    assert _model_files(assistant_home) == []


def test_quantize_to_the_source_type_is_one_line(installed_models: dict, assistant_home: Path) -> None:
    assert "source itself" in assert_one_line_error(run_cli("models", "quantize", SMOL, "--to", "q4_1"))
    assert _model_files(assistant_home) == []


def test_quantize_when_the_target_exists_keeps_it(installed_models: dict, assistant_home: Path) -> None:
    first = run_cli("models", "quantize", SMOL, "--to", "q8_0")
    assert first.returncode == 0, first.stderr
    files = _model_files(assistant_home)
    assert len(files) == 1
    before = (files[0].stat().st_mtime_ns, files[0].stat().st_size)
    line = assert_one_line_error(run_cli("models", "quantize", SMOL, "--to", "q8_0"))
    assert "already installed" in line and "--force" in line
    assert _model_files(assistant_home) == files  # no .partial beside it
    assert (files[0].stat().st_mtime_ns, files[0].stat().st_size) == before


# -- bench ---------------------------------------------------------------------------------------------------


def test_bench_of_whisper_and_llm_together_is_one_line(installed_models: dict) -> None:
    assert "together" in assert_one_line_error(run_cli("bench", "run", WHISPER, SMOL, "--quick", "--no-save"))


@pytest.mark.parametrize("reference", ["nonexistent", "smollm2-135m-instruct:q8_0"])
def test_bench_reference_that_is_not_installed_is_one_line(installed_models: dict, reference: str) -> None:
    line = assert_one_line_error(run_cli("bench", "run", SMOL, "--reference", reference, "--quick", "--no-save"))
    assert reference in line


def test_bench_ctx_zero_is_one_line(installed_models: dict) -> None:
    assert "--ctx" in assert_one_line_error(run_cli("bench", "run", SMOL, "--ctx", "0", "--quick", "--no-save"))


BAD_RUNS = [
    ("zero", "0", "no benchmark run 0"),
    ("minus-one-no-runs", "-1", "no benchmark runs yet"),
    ("minus-zero", "-0", "invalid run"),
    ("ten-to-the-23", str(10**23), f"no benchmark run {10**23}"),
    ("minus-ten-to-the-23", f"-{10**23}", "no benchmark run"),
    ("letters", "abc", "invalid run 'abc'"),
    ("last-no-runs", "last", "no benchmark runs yet"),
]


@pytest.mark.parametrize("command", ["compare", "plot", "export", "rm"])
@pytest.mark.parametrize(("case", "ref", "needle"), BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_run_id_is_one_line(command: str, case: str, ref: str, needle: str) -> None:
    assert needle in assert_one_line_error(run_cli("bench", command, ref))


@pytest.fixture
def stored_run(assistant_home: Path) -> int:
    """A stored run (rows as `bench run` stores them) for the plot-path cases; no model is measured."""
    from assistant.bench import fingerprint, results
    from assistant.bench.results import Run

    row = {
        "id": "fam:q8_0", "reference": "fam:q8_0", "is_reference": True, "quant": "Q8_0", "size_bytes": 145_000_000,
        "bpw": 8.5, "load_s": 0.1, "pp_tps": 900.0, "tg_tps": 80.0, "ttft_ms": 60.0, "peak_rss_mb": 250.0,
        "ppl": 20.0, "ppl_ratio": 1.0, "kld": 0.0, "top1_agreement": 1.0, "accuracy": 0.8, "per": 1.0,
    }  # fmt: skip
    run = Run(kind="llm", rows=[row], fingerprint=fingerprint.collect(2, 4096), quick=True, threads=2, context=4096,
              wall_s=1.0)  # fmt: skip
    return results.save(run)


def test_minus_one_is_the_last_run_not_an_unknown_option(stored_run: int) -> None:
    result = run_cli("bench", "export", "-1", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "fam:q8_0" in result.stdout


@pytest.mark.parametrize("where", ["missing-folder", "under-a-file", "under-etc-hostname"])
def test_plot_svg_where_it_cannot_be_written_is_one_line(stored_run: int, tmp_path: Path, where: str) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    target = {
        "missing-folder": tmp_path / "missing" / "plot.svg",
        "under-a-file": a_file / "plot.svg",
        "under-etc-hostname": Path("/etc/hostname/plot.svg"),  # a file's child fails for root too
    }[where]
    hostname = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    line = assert_one_line_error(run_cli("bench", "plot", str(stored_run), "--svg", str(target)))
    assert str(target) in line
    assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "notes.txt"]
    if hostname is not None:
        assert Path("/etc/hostname").read_bytes() == hostname


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["chats", "show", "abc"], "'abc' is not a valid integer"),
        (["nosuchcommand"], "No such command"),
        (["models", "list", "--bogus"], "No such option '--bogus'"),
    ],
    ids=["not-an-integer", "unknown-command", "unknown-option"],
)
def test_usage_errors_are_one_line_pointing_at_help(argv: list[str], needle: str) -> None:
    result = run_cli(*argv)
    line = assert_one_line_error(result)
    assert result.returncode == 2
    assert needle in line and "--help" in line, line
