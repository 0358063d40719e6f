"""Hostile input that needs no model: config files, catalog files, ids, paths and non-model files.

Each case is what a user could plausibly do (a typo in config.toml, a path to the wrong file, an id with a
newline in it). Each must end in one ``error:`` line that names the thing at fault, exit non-zero and leave
the home as it was: no database created for a command that failed before it needed one, nothing installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli

# (case id, config.toml text or None, user models.toml text or None, argv, what the error line must say)
CONFIG_CASES = [
    ("table-is-a-number", "runtime = 3\n", None, ["models", "list"], "runtime"),
    ("wrong-type", '[runtime]\nthreads = "many"\n', None, ["models", "list"], "runtime.threads"),
    ("negative-threads", "[runtime]\nthreads = -2\n", None, ["models", "list"], "runtime.threads"),
    ("context-zero", "[runtime]\ncontext_size = 0\n", None, ["models", "list"], "runtime.context_size"),
    ("unknown-section", "[bogus]\nx = 1\n", None, ["models", "list"], "bogus: unknown key"),
    ("huge-float", "[chat]\ntemperature = 1e400\n", None, ["models", "list"], "chat.temperature"),
    ("not-toml", "this is = = not toml\n", None, ["models", "list"], "not valid TOML"),
    ("unknown-default-model", '[models]\nchat = "nonexistent:q9"\n', None, ["chat", "-p", "hi"], "nonexistent:q9"),
    ("catalog-entry-wrong-shape", None, "[[family]]\nid = 3\n", ["models", "list"], "models.toml"),
    ("catalog-not-toml", None, "not toml ===\n", ["models", "list"], "models.toml"),
]


@pytest.mark.parametrize(
    ("case", "config", "catalog", "argv", "needle"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_bad_config_or_catalog_is_one_line_naming_the_key(
    assistant_home: Path, case: str, config: str | None, catalog: str | None, argv: list[str], needle: str
) -> None:
    config_dir = assistant_home / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (config_dir / "config.toml").write_text(config)
    if catalog is not None:
        (config_dir / "models.toml").write_text(catalog)
    before = {p: p.read_bytes() for p in config_dir.iterdir()}
    line = assert_one_line_error(run_cli(*argv))
    assert needle in line, line
    # The user's files are reported, never rewritten or "fixed" behind their back.
    assert {p: p.read_bytes() for p in config_dir.iterdir()} == before


def test_config_that_is_not_utf8_or_is_a_folder(assistant_home: Path) -> None:
    config = assistant_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_bytes(b"\xff\xfe[chat]\n")
    assert "config.toml" in assert_one_line_error(run_cli("models", "list"))
    config.unlink()
    config.mkdir()
    line = assert_one_line_error(run_cli("models", "list"))
    assert "config.toml" in line and "directory" in line.lower()


BAD_IDS = [
    ("unknown-pull", ["models", "pull", "nosuch:q4"], "nosuch:q4"),
    ("newline-in-id", ["models", "info", "a\nb"], "invalid model id"),
    ("markup-in-id", ["models", "pull", "[/]x"], "invalid model id"),
    ("rm-unknown", ["models", "rm", "nosuch"], "nosuch"),
    ("use-unknown", ["models", "use", "nosuch"], "nosuch"),
    ("quantize-unknown", ["models", "quantize", "nosuch", "--to", "q8_0"], "nosuch"),
    ("bench-unknown", ["bench", "nosuch", "--quick"], "nosuch"),
    ("chat-missing", ["chats", "show", "99"], "no chat 99"),
    ("chat-negative", ["chats", "show", "--", "-1"], "no chat -1"),
    ("chat-rm-missing", ["chats", "rm", "5"], "no chat 5"),
    ("plot-without-runs", ["bench", "plot", "last"], "no benchmark runs"),
]


@pytest.mark.parametrize(("case", "argv", "needle"), BAD_IDS, ids=[c[0] for c in BAD_IDS])
def test_bad_ids_are_one_line_and_change_nothing(assistant_home: Path, case: str, argv: list[str], needle: str) -> None:
    line = assert_one_line_error(run_cli(*argv))
    assert needle in line, line
    models = assistant_home / "data" / "models"
    assert not models.exists() or not any(models.iterdir()), "a failed command installed something"


def _files(tmp_path: Path) -> dict[str, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    not_gguf = tmp_path / "notgguf.gguf"
    not_gguf.write_text("hi\n")
    empty = tmp_path / "empty.gguf"
    empty.touch()
    text_as_wav = tmp_path / "x.wav"
    text_as_wav.write_text("not audio\n")
    empty_wav = tmp_path / "e.wav"
    empty_wav.touch()
    passwd_like = tmp_path / "passwd"
    passwd_like.write_text("root:x:0:0:root:/root:/bin/bash\n")
    return {
        "not_gguf": not_gguf,
        "empty": empty,
        "text_as_wav": text_as_wav,
        "empty_wav": empty_wav,
        "passwd": passwd_like,
        "missing": tmp_path / "nope.gguf",
        "dir": tmp_path,
    }


FILE_CASES = [
    ("import-not-gguf", ["models", "import", "{not_gguf}"], "not a valid GGUF"),
    ("import-empty", ["models", "import", "{empty}"], "empty file"),
    ("import-missing", ["models", "import", "{missing}"], "no such file"),
    ("info-folder", ["models", "info", "{dir}"], "directory"),
    ("info-not-gguf", ["models", "info", "{passwd}"], "not a valid GGUF"),
    ("transcribe-missing", ["transcribe", "{missing}"], "no such file"),
    ("transcribe-text-file", ["transcribe", "{text_as_wav}"], "not an audio file"),
    ("transcribe-empty", ["transcribe", "{empty_wav}"], "empty file"),
    ("transcribe-folder", ["transcribe", "{dir}"], "directory"),
]


@pytest.mark.parametrize(("case", "argv", "needle"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_wrong_files_are_one_line_naming_the_file(
    assistant_home: Path, tmp_path: Path, case: str, argv: list[str], needle: str
) -> None:
    files = _files(tmp_path / "inputs")
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    line = assert_one_line_error(run_cli(*args))
    assert needle in line, line
    named = next(a for a in args if a.startswith("/"))
    assert named in line, f"the error does not name the file: {line}"
    models = assistant_home / "data" / "models"
    assert not models.exists() or not any(models.iterdir())
