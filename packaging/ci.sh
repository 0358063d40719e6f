#!/usr/bin/env bash
# CI step for the standalone app: build it, smoke-test it, check its instruction sets. Called by .ci/run.
#
#   packaging/ci.sh
#
# Cost: the first run on a machine compiles the portable llama-cpp-python (~10 min on 2 cores) and fills
# the build venv (~2 min of downloads); both are cached in $ASSISTANT_BUILD_CACHE (~/.cache/assistant-build)
# and reused afterwards. PyInstaller's one-dir build then takes 2-4 minutes and the smoke test 1-2.
#
# Environment:
#   ASSISTANT_CI_ONEFILE=1   also build and smoke-test the one-file app (+3-5 min)
#   ASSISTANT_CI_QEMU=0      skip running the app under qemu -cpu Haswell/Nehalem (isa_check.sh; ~2 min)
# Tools the smoke test needs (tmux, espeak-ng, binutils, qemu-user when asked) are installed with apt-get
# when missing and this runs as root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
START=$SECONDS

need=()
command -v tmux >/dev/null || need+=(tmux)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v objdump >/dev/null || need+=(binutils)
command -v unzip >/dev/null || need+=(unzip)
[[ ${ASSISTANT_CI_QEMU:-1} == 1 ]] && ! command -v qemu-x86_64 >/dev/null && need+=(qemu-user)
if ((${#need[@]})); then
    if [[ $(id -u) == 0 ]]; then
        echo "[ci] apt-get install ${need[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null
    else
        echo "[ci] missing tools: ${need[*]} (install them, or run as root)" >&2
        exit 1
    fi
fi

build_args=()
[[ ${ASSISTANT_CI_ONEFILE:-0} == 1 ]] && build_args+=(--onefile)
t=$SECONDS
bash "$HERE/build.sh" "${build_args[@]}"
BUILD_TIME=$((SECONDS - t))
echo "[ci] build time: ${BUILD_TIME} s"

status=0
bash "$HERE/smoke.sh" "$HERE/dist/assistant/assistant" || status=1
if [[ ${ASSISTANT_CI_ONEFILE:-0} == 1 ]]; then
    bash "$HERE/smoke.sh" "$HERE/dist/assistant-onefile" || status=1
fi
isa_args=(--no-qemu)
[[ ${ASSISTANT_CI_QEMU:-1} == 1 ]] && isa_args=()
bash "$HERE/isa_check.sh" "${isa_args[@]}" "$HERE/dist/assistant/assistant" || status=1

verdict=ok
((status == 0)) || verdict=FAILED
echo "[ci] standalone app: build ${BUILD_TIME} s, total $((SECONDS - START)) s, $verdict"
exit "$status"
