#!/usr/bin/env bash
# Build the standalone `assistant` app with PyInstaller (issue #6).
#
#   packaging/build.sh [--onefile] [--no-onedir] [--dist DIR]
#
#   --onefile    also build the one-file app (<dist>/assistant-onefile)
#   --no-onedir  skip the one-dir app (<dist>/assistant/assistant)
#   --dist DIR   where the apps go (default: packaging/dist, gitignored)
#
# Environment:
#   ASSISTANT_BUILD_CACHE   build venv, the portable llama-cpp-python wheel, PyInstaller's work dirs
#                           (default ~/.cache/assistant-build; outside the repo so a fresh clone reuses it)
#   ASSISTANT_BUILD_PYTHON  interpreter for the build venv (default: python3.11, else python3). It must be
#                           built with --enable-shared: PyInstaller bundles its libpython.
#
# Why a separate venv: the dev venv's llama-cpp-python is compiled with -march=native, and a binary built
# from it dies with "illegal instruction" on any CPU older than this one. Here it is compiled with
# GGML_NATIVE=OFF and the instruction sets named explicitly: x86-64 + SSE4.2/AVX/AVX2/FMA/F16C/BMI2
# (x86-64-v3: Intel Core since Haswell 2013, Pentium/Celeron since ~2020, AMD since Excavator 2015), and no
# AVX-512/AVX-VNNI/AMX, whatever the build machine has. One CPU variant, not GGML_BACKEND_DL +
# GGML_CPU_ALL_VARIANTS (a CPU backend per microarchitecture, picked at run time): that compiles the CPU
# backend a dozen times over (hours on 2 cores, past CI's budget) and needs the backend files found at run
# time; it is the way to go later for AVX-512 speed and pre-AVX2 CPUs. isa_check.sh proves the result.
#
# pip's wheel cache keys on the requirement, not on CMAKE_ARGS, and already holds the dev venv's native
# wheel: so the portable wheel is built with --no-cache-dir into its own directory, stamped with the flags,
# and installed from there with --no-index. The compile (~10 min on 2 cores) happens once per cache dir.
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ASSISTANT_BUILD_CACHE:-$HOME/.cache/assistant-build}
DIST=$REPO/packaging/dist
BUILD_ONEDIR=1
BUILD_ONEFILE=0

while (($#)); do
    case $1 in
        --onefile) BUILD_ONEFILE=1 ;;
        --no-onedir) BUILD_ONEDIR=0 ;;
        --dist)
            [[ $# -ge 2 ]] || { echo "build.sh: --dist needs a directory" >&2; exit 2; }
            DIST=$2
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)

# The same pin as pyproject.toml, read from it so the two never drift apart.
LLAMA_PIN=$(grep -o '"llama-cpp-python==[^"]*"' "$REPO/pyproject.toml" | tr -d '"' | head -n1)
[[ -n $LLAMA_PIN ]] || { echo "build.sh: no llama-cpp-python==X pin in pyproject.toml" >&2; exit 1; }

# Portable CPU build. LLAVA_BUILD=OFF: the multimodal library (libmtmd) is unused and only adds compile time.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
-DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_BACKEND_DL=OFF \
-DGGML_CPU_ALL_VARIANTS=OFF -DLLAVA_BUILD=OFF"

WHEELS=$CACHE/wheels-native-off
VENV=$CACHE/venv
STAMP="$LLAMA_PIN $LLAMA_CMAKE_ARGS"

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
seconds_since() { echo $((SECONDS - $1)); }

mkdir -p "$CACHE"
# One build at a time per cache dir: two would fight over the venv and the wheel dir.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    log "another build holds $CACHE/.lock; waiting"
    flock 9
fi

TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
START=$SECONDS

# --- interpreter ---------------------------------------------------------------------------------------
pick_python() {
    if [[ -n ${ASSISTANT_BUILD_PYTHON:-} ]]; then echo "$ASSISTANT_BUILD_PYTHON"; return; fi
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then command -v "$candidate"; return; fi
    done
    echo "build.sh: no python3 found (set ASSISTANT_BUILD_PYTHON)" >&2
    exit 1
}
PYTHON=$(pick_python)
# A pyenv shim is a shell script; resolve it to the interpreter it runs.
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
PY_OK='import sys, sysconfig
sys.exit(not (sys.version_info >= (3, 11) and sysconfig.get_config_var("Py_ENABLE_SHARED")))'
if ! "$PYTHON" -c "$PY_OK"; then
    echo "build.sh: $PYTHON is older than 3.11 or has no shared libpython (PyInstaller needs one);" \
        "set ASSISTANT_BUILD_PYTHON" >&2
    exit 1
fi

# --- build venv (it also compiles the wheel) ------------------------------------------------------------
py_version() { "$1" -c 'import sys; print(sys.version)' 2>/dev/null || true; }
if [[ ! -x $VENV/bin/python || "$(py_version "$VENV/bin/python")" != "$(py_version "$PYTHON")" ]]; then
    log "creating the build venv at $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi

# --- portable llama-cpp-python wheel ----------------------------------------------------------------------
wheel_file() { compgen -G "$WHEELS/llama_cpp_python-${LLAMA_PIN#*==}-*.whl" | head -n1 || true; }
if [[ -n $(wheel_file) && -f $WHEELS/FLAGS && $(cat "$WHEELS/FLAGS") == "$STAMP" ]]; then
    log "reusing $(wheel_file)"
else
    log "compiling $LLAMA_PIN with GGML_NATIVE=OFF (about 10 minutes on 2 cores; cached afterwards)"
    t=$SECONDS
    # -v: the log then holds the compiler flags (kept in CPU_VARIANT below).
    CMAKE_ARGS=$LLAMA_CMAKE_ARGS "$VENV/bin/pip" wheel -v --no-cache-dir --no-deps \
        "$LLAMA_PIN" -w "$TMP/wheels" >"$TMP/wheel.log" 2>&1 || {
        tail -n 40 "$TMP/wheel.log" >&2
        echo "build.sh: compiling $LLAMA_PIN failed (log above)" >&2
        exit 1
    }
    # The flags the compiler really got, kept for isa_check.sh and for whoever wonders.
    grep -o 'Adding CPU backend variant.*' "$TMP/wheel.log" >"$TMP/wheels/CPU_VARIANT" || true
    if grep -q 'march=native' "$TMP/wheels/CPU_VARIANT"; then
        echo "build.sh: the CPU backend was still built with -march=native: $(cat "$TMP/wheels/CPU_VARIANT")" >&2
        exit 1
    fi
    echo "$STAMP" >"$TMP/wheels/FLAGS"
    rm -rf "$WHEELS.old"
    if [[ -d $WHEELS ]]; then mv "$WHEELS" "$WHEELS.old"; fi
    mv "$TMP/wheels" "$WHEELS"
    rm -rf "$WHEELS.old"
    log "compiled in $(seconds_since "$t") s: $(wheel_file)"
fi
LLAMA_WHEEL=$(wheel_file)

t=$SECONDS
PIP=("$VENV/bin/pip" --disable-pip-version-check)
# Installed from the portable wheel only (--no-index: never pip's cache of the native one). The marker says
# which wheel is in the venv, so a rebuilt wheel replaces it.
WHEEL_SUM=$(sha256sum "$LLAMA_WHEEL" | cut -d' ' -f1)
if [[ ! -f $VENV/.llama-wheel || $(cat "$VENV/.llama-wheel") != "$WHEEL_SUM" ]]; then
    log "installing $(basename "$LLAMA_WHEEL") into the build venv"
    "${PIP[@]}" install --quiet --force-reinstall --no-deps --no-index --find-links "$WHEELS" "$LLAMA_PIN"
    "${PIP[@]}" install --quiet --find-links "$WHEELS" "$LLAMA_PIN"  # its own dependencies (numpy, jinja2...)
    echo "$WHEEL_SUM" >"$VENV/.llama-wheel"
fi
# The project as a wheel (models.toml goes inside the package, as users get it), with PyInstaller from the
# `packaging` extra. The second install replaces the package even when its version has not changed.
log "installing the project from $REPO"
"${PIP[@]}" wheel --quiet --no-deps -w "$TMP/project" "$REPO"
PROJECT_WHEEL=$(compgen -G "$TMP/project/assistant-*.whl" | head -n1)
"${PIP[@]}" install --quiet --find-links "$WHEELS" "${PROJECT_WHEEL}[packaging]"
"${PIP[@]}" install --quiet --force-reinstall --no-deps "$PROJECT_WHEEL"
# Guard: the venv must still hold the portable build (an unpinned dependency could have replaced it).
installed=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')
if [[ $installed != "${LLAMA_PIN#*==}" ]]; then
    echo "build.sh: the build venv lost $LLAMA_PIN" >&2
    exit 1
fi
log "build venv ready in $(seconds_since "$t") s"

# --- PyInstaller -----------------------------------------------------------------------------------------
run_pyinstaller() {
    local work=$1
    shift
    mkdir -p "$work"
    # Run from outside the repo so the analysis imports the installed package, not ./assistant.
    (cd "$work" && "$VENV/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$DIST" --workpath "$work" \
        "$REPO/packaging/assistant.spec" "$@")
}

if ((BUILD_ONEDIR)); then
    t=$SECONDS
    log "PyInstaller: one-dir app"
    run_pyinstaller "$CACHE/work/onedir"
    log "one-dir app in $(seconds_since "$t") s: $DIST/assistant/assistant ($(du -sh "$DIST/assistant" | cut -f1))"
fi
if ((BUILD_ONEFILE)); then
    t=$SECONDS
    log "PyInstaller: one-file app"
    run_pyinstaller "$CACHE/work/onefile" -- --onefile
    size=$(du -sh "$DIST/assistant-onefile" | cut -f1)
    log "one-file app in $(seconds_since "$t") s: $DIST/assistant-onefile ($size)"
fi
log "build finished in $(seconds_since "$START") s"
