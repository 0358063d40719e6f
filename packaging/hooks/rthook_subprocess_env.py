"""Runtime hook: other programs get the user's library path, not the bundle's.

The bootloader prepends the bundle's directory to LD_LIBRARY_PATH (keeping the user's value in
LD_LIBRARY_PATH_ORIG) and re-executes itself, so the app finds its own libraries. Every child inherits it:
espeak-ng (read-aloud) would load the bundled libstdc++ and friends instead of the system's, and fail on a
distribution newer than the build machine. PyInstaller's advice is to restore the variable for such calls;
doing it here covers every subprocess call in the app, present and future.

Not os.environ itself: the app re-runs its own executable (benchmark workers: ``sys.executable _worker``), and
that child needs the bundle's path and the bootloader's variables as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

_popen_init = subprocess.Popen.__init__


def _runs_this_app(args: Any, executable: Any, shell: bool) -> bool:
    if shell:
        return False
    program = executable
    if program is None:
        if isinstance(args, (str, bytes, os.PathLike)):
            program = args
        elif args:
            program = args[0]
    if program is None:
        return False
    try:
        return os.path.realpath(os.fsdecode(program)) == os.path.realpath(sys.executable)
    except (TypeError, ValueError):
        return False


def _user_env(env: Any) -> dict[str, str]:
    result = dict(os.environ if env is None else env)
    original = result.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        result["LD_LIBRARY_PATH"] = original
    else:
        result.pop("LD_LIBRARY_PATH", None)
    return result


def _init(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:  # type: ignore[type-arg]
    # `env` passed positionally (the 11th parameter) is left alone: nothing in the app does that.
    if len(rest) < 10 and not _runs_this_app(args, kwargs.get("executable"), bool(kwargs.get("shell"))):
        kwargs["env"] = _user_env(kwargs.get("env"))
    _popen_init(self, args, *rest, **kwargs)


if getattr(sys, "frozen", False):
    subprocess.Popen.__init__ = _init  # type: ignore[method-assign]
