"""``assistant bench`` gives figures that can be trusted, on the real models: every figure with its 95 %
interval, a variant benched against itself is not significantly different on anything, your own tasks and
text run end to end, quality is compared only within a vocabulary, runtime settings sweep as rows, and the
run ends with a verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import GEMMA, SMOL, assert_one_line_error, env_vars, register_model, run_cli

pytestmark = pytest.mark.slow

SAME = "smollm2-135m-instruct:same"  # the starter's own file under a second id: a variant equal to its reference
FIGURES = ("accuracy", "pp_tps", "tg_tps", "ttft_ms", "load_s", "kld", "ppl_ratio", "top1_agreement", "per")

# A user's task file: 20 items, both kinds, two categories.
USER_TASKS = [
    *(
        {"id": f"capital-{n}", "category": "capitals", "prompt": f"The capital of {country} is", "choices": choices,
         "answer": answer}
        for n, (country, choices, answer) in enumerate(
            [
                ("France", ["Paris", "Rome", "Oslo"], 0),
                ("Japan", ["Lima", "Tokyo", "Cairo"], 1),
                ("Italy", ["Oslo", "Delhi", "Rome"], 2),
                ("Germany", ["Berlin", "Madrid", "Lima"], 0),
                ("Spain", ["Cairo", "Madrid", "Paris"], 1),
                ("Russia", ["Rome", "Lima", "Moscow"], 2),
                ("Egypt", ["Cairo", "Tokyo", "Berlin"], 0),
                ("Peru", ["Oslo", "Lima", "Madrid"], 1),
                ("Norway", ["Delhi", "Paris", "Oslo"], 2),
                ("India", ["New Delhi", "Berlin", "Rome"], 0),
            ]
        )
    ),
    *(
        {"id": f"sum-{a}-{b}", "category": "sums", "prompt": f"What is {a} + {b}? Reply with the number only.",
         "answer": str(a + b)}
        for a, b in [(2, 3), (4, 4), (1, 6), (5, 2), (3, 3), (7, 1), (2, 2), (6, 3), (1, 1), (4, 5)]
    ),
]  # fmt: skip
USER_TEXT = (
    "The lighthouse keeper climbed the stairs every evening at dusk. He wound the clockwork, trimmed the wick "
    "and wrote the weather in his book: wind from the west, a light swell, rain by midnight. "
) * 12


def _env(home: Path) -> dict[str, str]:
    return {"ASSISTANT_HOME": str(home)}


@pytest.fixture(scope="module")
def home(starter_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 (twice: the starter and the same file as ``SAME``) and Gemma 3, registered in place."""
    home = tmp_path_factory.mktemp("honest-home")
    with env_vars(ASSISTANT_HOME=str(home)):
        register_model(SMOL, starter_files[SMOL])
        register_model(GEMMA, starter_files[GEMMA])
        copy = home / "same.gguf"
        shutil.copyfile(starter_files[SMOL], copy)
        register_model(SAME, copy)
    return home


@pytest.fixture(scope="module")
def user_run(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick run on the user's own 20 tasks and text: the reference, itself under another id, and a
    model of another family (Gemma 3) against the same --reference."""
    work = tmp_path_factory.mktemp("user-files")
    tasks = work / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(item) + "\n" for item in USER_TASKS), encoding="utf-8")
    text = work / "text.txt"
    text.write_text(USER_TEXT, encoding="utf-8")
    result = run_cli(
        "bench", SMOL, SAME, GEMMA, "--reference", SMOL, "--quick", "--tasks", str(tasks), "--text", str(text),
        "--threads", "2", "--json", env=_env(home), timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _rows(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in run["results"]}


def test_every_figure_has_an_interval_that_contains_it(user_run: dict[str, Any]) -> None:
    rows = _rows(user_run)
    assert set(rows) == {SMOL, SAME, GEMMA}
    for row in rows.values():
        for key in FIGURES:
            if row[key] is None:  # quality across vocabularies: not measured, and said why
                assert key in ("kld", "ppl_ratio", "top1_agreement") and row["quality_note"], (row["id"], key)
                continue
            lo, hi = row[f"{key}_lo"], row[f"{key}_hi"]
            if key == "per" and not row["is_reference"]:
                # --quick times each speed once: no spread measured, so PER claims no interval at all
                assert user_run["options"]["reps"] == 1 and lo is None and hi is None, (row["id"], lo, hi)
                continue
            assert lo <= row[key] <= hi, (row["id"], key, lo, row[key], hi)
    assert rows[SMOL]["tasks_total"] == len(USER_TASKS)  # the user's items, all of them
    assert set(rows[SMOL]["accuracy_by_family"]) == {"capitals", "sums"}


def test_a_variant_against_itself_is_not_significantly_different(user_run: dict[str, Any]) -> None:
    same = _rows(user_run)[SAME]
    assert same["reference"] == SMOL and not same["is_reference"]
    assert same["accuracy_diff"] == 0 and not same["accuracy_diff_significant"]
    assert same["accuracy_diff_lo"] <= 0 <= same["accuracy_diff_hi"]
    assert same["kld"] == pytest.approx(0, abs=1e-6) and same["ppl_ratio"] == pytest.approx(1, abs=1e-6)
    assert same["top1_agreement"] == pytest.approx(1)
    assert same["per_axes"]["accuracy"] == 1.0  # PER differs from 1 only by the speed noise of two runs


def test_quality_is_compared_only_within_a_vocabulary(user_run: dict[str, Any]) -> None:
    gemma = _rows(user_run)[GEMMA]
    assert gemma["reference"] == SMOL  # accuracy, speed, memory and PER against --reference, across families
    assert gemma["kld"] is None and gemma["ppl_ratio"] is None and gemma["top1_agreement"] is None
    assert SMOL in gemma["quality_note"] and gemma["per"] is not None and gemma["accuracy_diff"] is not None


def test_the_run_ends_with_a_verdict(user_run: dict[str, Any], home: Path) -> None:
    verdict = user_run["verdict"]
    assert verdict["id"] in {SMOL, SAME, GEMMA} and verdict["reason"].startswith(f"{verdict['id']}")
    shown = run_cli("bench", "history", "--json", env=_env(home))
    assert json.loads(shown.stdout)[0]["verdict"] == verdict  # stored with the run


def test_runtime_settings_sweep_as_rows(home: Path) -> None:
    result = run_cli(
        "bench", SMOL, "--reference", SMOL, "--quick", "--threads", "2", "--kv-type", "f16,q8_0", "--flash-attn", "on", "--no-save",
        "--json", env=_env(home), timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = _rows(json.loads(result.stdout))
    assert set(rows) == {f"{SMOL} kv_type=f16", f"{SMOL} kv_type=q8_0"}  # one value is no sweep: not in the id
    (ref,) = [r for r in rows.values() if r["is_reference"]]
    assert ref["settings"] == {"threads": 2, "kv_type": "f16", "flash_attn": "on", "batch": 512}
    q8 = rows[f"{SMOL} kv_type=q8_0"]
    assert q8["reference"] == ref["id"] and q8["kld"] is not None  # a q8_0 cache changes the distribution a little
    # the built-in evaluation: five families or more, each scored
    assert len(ref["accuracy_by_family"]) >= 5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b'{"prompt": "2 + 2 =", "choices": ["4", "5"]}\n', "line 1"),
        (b'{"prompt": "a", "answer": "b"}\n{"prompt": "2 + 2 =", "choices": ["4", "5"], "answer": 2}\n', "line 2"),
        (b'{"prompt": 5, "answer": "b"}\n', "line 1"),
        (b"\xff\xfe not text\n", "UTF-8"),
    ],
)
def test_a_bad_task_file_is_refused_before_anything_runs(
    home: Path, tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "tasks.jsonl"
    bad.write_bytes(content)
    result = run_cli("bench", SMOL, "--quick", "--tasks", str(bad), env=_env(home))
    assert_one_line_error(result)
    assert expected in result.stderr
    history = run_cli("bench", "history", "--json", env=_env(home))
    assert all(run["options"].get("tasks_file") != str(bad) for run in json.loads(history.stdout))
