"""config.toml: typed settings, one-line descriptions, errors naming the key."""

from __future__ import annotations

import pytest

from assistant import config, paths
from assistant.errors import AssistantError

from conftest import assert_one_line_error, run_cli


def _write(text: str) -> None:
    paths.ensure(paths.config_dir())
    paths.config_file().write_text(text)


def test_defaults_without_a_file() -> None:
    settings = config.load()
    assert settings.models.chat == "smollm2-135m-instruct:q4_1"
    assert settings.models.speech == "whisper-tiny.en:int8"
    assert settings.threads() >= 1


def test_every_setting_has_a_description() -> None:
    rows = config.describe()
    keys = {key for key, _, _ in rows}
    assert {"runtime.threads", "runtime.context_size", "models.chat", "models.speech", "models.hub_endpoint"} <= keys
    assert {"models.offline"} <= keys
    assert all(description for _, description, _ in rows)


def test_values_are_read() -> None:
    _write('[runtime]\nthreads = 3\ncontext_size = 2048\n[models]\noffline = true\nhub_endpoint = "http://x"\n')
    settings = config.load()
    assert settings.threads() == 3
    assert settings.runtime.context_size == 2048
    assert settings.models.offline is True


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[runtime]\nthreads = 0\n", "runtime.threads"),
        ('[runtime]\ncontext_size = "big"\n', "runtime.context_size"),
        ("[runtime]\nthreadz = 2\n", "runtime.threadz: unknown key"),
        ("[chat]\ntemperature = -1\n", "chat.temperature"),
        ("[nonsense]\nx = 1\n", "nonsense: unknown key"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(text: str, key: str) -> None:
    _write(text)
    with pytest.raises(AssistantError) as err:
        config.load()
    assert key in str(err.value)


def test_bad_config_is_a_one_line_cli_error() -> None:
    _write("[runtime]\nthreads = -2\n")
    line = assert_one_line_error(run_cli("models", "list"))
    assert "runtime.threads" in line
