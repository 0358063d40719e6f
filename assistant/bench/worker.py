"""Run measurement and quantization work in a fresh child process, talking JSON lines.

Why a child process: peak RSS (VmHWM) is per process, so each variant's memory is its own only
if it is measured alone; a llama.cpp crash on a bad file kills the child, not the app; and Ctrl+C can stop
work stuck inside a C call (``llama_model_quantize`` has no abort hook) by killing the child, after which
the parent removes whatever the child half-wrote.

The child is the app itself (``python -m assistant _worker NAME SPEC``; the frozen binary runs
``assistant _worker NAME SPEC``), so the same path is exercised in tests and in the packaged app. It writes
events on stdout as lines starting with ``EVENT_PREFIX`` (anything else, e.g. stray C prints, is ignored),
ending with one ``result`` or ``error`` event. The child runs in its own session, so a terminal Ctrl+C
reaches only the parent, which then kills the child deterministically.

The child also dies with its parent, however the parent goes (``kill -9`` included), removing what it was
writing (``spec["output"]``): on Linux through ``PR_SET_PDEATHSIG`` (SIGTERM, taken by a thread so it acts
even while the main thread is inside a C call), everywhere through its stdin, a pipe the parent never writes
to (end of file = the parent is gone). An orphan used to finish a 271 MB hidden ``.partial`` nobody removed.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import AssistantError, Cancelled, one_line

EVENT_PREFIX = "@@assistant-worker "
MiB = 1024 * 1024
CANCEL_POLL_S = 0.05  # how often a cancellation request is checked while a child works
PARENT_ENV = "ASSISTANT_WORKER_PARENT"  # the parent's pid: the child watches it (see the module docstring)
PARENT_GONE_EXIT = 125
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Worker name -> module with a ``work(spec, emit) -> dict`` function. A fixed list: the child never
# imports a module named by its caller.
WORKERS = {
    "quantize": "assistant.quantize",
    "bench.llm": "assistant.bench.measure",
    "bench.speech": "assistant.bench.speech",
}

Emit = Callable[[dict[str, Any]], None]


class _Cancel(Protocol):
    @property
    def cancelled(self) -> bool: ...


def command(name: str, spec: dict[str, Any]) -> list[str]:
    payload = json.dumps(spec)
    if getattr(sys, "frozen", False):
        return [sys.executable, "_worker", name, payload]
    return [sys.executable, "-m", "assistant", "_worker", name, payload]


def run(
    name: str,
    spec: dict[str, Any],
    on_event: Emit | None = None,
    cancel: _Cancel | None = None,
) -> dict[str, Any]:
    """Run worker ``name`` on ``spec`` in a child process; return its result event.

    ``on_event`` receives every progress event. ``cancel.cancelled`` is watched from a helper thread; Ctrl+C
    (KeyboardInterrupt) and cancellation kill the child before ``Cancelled`` / the exception propagates.
    """
    if name not in WORKERS:
        raise ValueError(f"unknown worker {name!r}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
    with tempfile.TemporaryFile(mode="w+b") as err:
        proc = subprocess.Popen(
            command(name, spec),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.PIPE,  # never written: the child's end-of-file means this process is gone
            env=env,
            start_new_session=True,
        )
        result: dict[str, Any] | None = None
        failure: dict[str, Any] | None = None
        finished = threading.Event()
        if cancel is not None:
            # A step can run for seconds without an event: kill the child as soon as cancel is set.
            threading.Thread(target=_watch, args=(proc, cancel, finished), daemon=True).start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                if not line.startswith(EVENT_PREFIX):
                    continue
                event = json.loads(line[len(EVENT_PREFIX) :])
                kind = event.get("event")
                if kind == "result":
                    result = event
                elif kind == "error":
                    failure = event
                elif on_event is not None:
                    on_event(event)
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
            code = proc.wait()
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
        except BaseException:
            _kill(proc)
            raise
        finally:
            finished.set()
            if proc.stdin is not None:
                proc.stdin.close()
        err.seek(0)
        log = err.read().decode("utf-8", "replace")
        if (failure is not None or code != 0) and _debug():
            sys.stderr.write(log)  # the child's traceback and llama.cpp's own messages
        if failure is not None:
            raise AssistantError(str(failure.get("message")), failure.get("hint"))
        if code != 0 or result is None:
            tail = [ln for ln in log.splitlines() if ln.strip()]
            last = tail[-1].strip() if tail else ""
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            raise AssistantError(
                f"the {name} worker failed ({how}){': ' + last if last else ''}",
                "run with --debug, or check the model file with 'assistant models verify'",
            )
        result.pop("event", None)
        return result


def _watch(proc: subprocess.Popen[bytes], cancel: _Cancel, finished: threading.Event) -> None:
    while not finished.wait(CANCEL_POLL_S):
        if cancel.cancelled:
            if proc.poll() is None:
                proc.kill()
            return


def _debug() -> bool:
    return os.environ.get("ASSISTANT_DEBUG", "") not in ("", "0")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def emit(event: dict[str, Any]) -> None:
    """Child side: send one event to the parent."""
    sys.stdout.write(EVENT_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def main(name: str, payload: str) -> int:
    """Child side: run worker ``name`` and report its result or error as events. Returns the exit code."""
    if name not in WORKERS:
        emit({"event": "error", "message": f"unknown worker {name!r}"})
        return 2
    try:
        spec = json.loads(payload)
        _die_with_parent([str(spec["output"])] if spec.get("output") else [])
        module = importlib.import_module(WORKERS[name])
        result = module.work(spec, emit)
    except KeyboardInterrupt:
        return 130
    except AssistantError as exc:
        emit({"event": "error", "message": exc.message, "hint": exc.hint})
        return 1
    except Exception as exc:
        if _debug():
            traceback.print_exc()
        emit({"event": "error", "message": one_line(exc, typed=True), "hint": "run with --debug"})
        return 1
    emit({"event": "result", **result})
    return 0


def _die_with_parent(outputs: list[str]) -> None:
    """Child side: exit, removing ``outputs``, as soon as the parent is gone (see the module docstring)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return  # started by hand, not by ``run``

    def abandon() -> None:
        for path in outputs:
            try:
                os.unlink(path)
            except OSError:
                pass
        os._exit(PARENT_GONE_EXIT)

    if sys.platform.startswith("linux"):
        # Blocked before any other thread exists (llama.cpp's included), so only the waiting thread takes it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

        def on_sigterm() -> None:
            signal.sigwait({signal.SIGTERM})
            abandon()

        threading.Thread(target=on_sigterm, daemon=True).start()
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != int(parent):
        abandon()  # it died before the watch was set up

    def watch_stdin() -> None:
        # os.read, not sys.stdin: a daemon thread inside a buffered read makes the interpreter abort at exit
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        abandon()

    threading.Thread(target=watch_stdin, daemon=True).start()


def peak_rss_bytes() -> int:
    """This process's peak resident set size. Linux: VmHWM, not getrusage — after fork+exec, ``ru_maxrss``
    still counts the parent's peak (a 13 MiB child of a 500 MiB parent reports 513 MiB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB."""
    return peak_rss_bytes() / MiB


def mean_sd(values: list[float], digits: int = 3) -> tuple[float, float | None]:
    """The mean and the standard deviation; no deviation (None, not 0) from one value: a spread that was not
    measured must not read as an exact figure."""
    mean = statistics.fmean(values)
    return round(mean, digits), round(statistics.stdev(values), digits) if len(values) > 1 else None
