#!/usr/bin/env bash
# Regenerate every file in benchmarks/results (and the README's figures from them), with the published
# options. Run it on a quiet machine: each results file records the commit, the command line and the
# machine fingerprint, so numbers from a busy or different machine are recognisable as such.
#
#   bash benchmarks/run_all.sh            # everything (the binary benchmark needs packaging/build.sh first)
#   BENCH_RESULTS=/tmp/x bash benchmarks/run_all.sh   # write elsewhere (smoke runs)
#
# Needs the starter models installed in the ASSISTANT_HOME in effect (assistant models pull --starter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

run() {
    echo "+ $python $*" >&2
    "$python" -u "$@"
}

run benchmarks/cli_startup.py
run benchmarks/chat_speed.py --tokens 128 --repeats 5
run benchmarks/tui.py --tokens 128 --repeats 5 --paint-runs 9
run benchmarks/speech.py --repeats 5
run benchmarks/fit_accuracy.py
run benchmarks/llama_bench_compare.py
# llama-perplexity --kl-divergence against our quality pass, on two rungs of the starter (made in this home)
"$python" -m assistant models quantize smollm2-135m-instruct:q4_1 --to q4_k_m,q2_k --force >&2
run benchmarks/perplexity_compare.py --reference smollm2-135m-instruct:q4_1 smollm2-135m-instruct:q2_k \
    smollm2-135m-instruct:q4_k_m
run benchmarks/pull_speed.py
run benchmarks/quant_ladder.py --reps 3 --repeat 2
run benchmarks/quant_ladder.py --quick --repeat 2 --only smollm2
run benchmarks/speech_variants.py
run benchmarks/voice_loop.py --turns 13
run benchmarks/serve.py --repeats 7
# llama.cpp's own tools, when built (in the cache dir, from the llama-cpp-python sdist's sources, next to
# llama-bench: cmake --build <cache>/llama-cpp-python-*/build --target llama-server llama-lookup), are
# measured beside us.
tools="${LLAMA_CACHE:-$HOME/.cache/assistant-bench}/llama-cpp-python-*/build/bin"
llama_lookup=$(compgen -G "$tools/llama-lookup" | head -n1 || true)
run benchmarks/speculative.py --drafts 7 --model smollm2-135m-instruct:q4_1 --model gemma3-270m:q4_k_m \
    ${llama_lookup:+--llama-lookup "$llama_lookup"}
llama_server=$(compgen -G "$tools/llama-server" | head -n1 || true)
run benchmarks/serve_batch.py --tokens 64 --repeats 11 ${llama_server:+--llama-server "$llama_server"}
if [[ -d packaging/dist ]]; then
    run benchmarks/binary.py
else
    echo "skipping binary.py: no packaging/dist (run packaging/build.sh first); binary.json is left as it was" >&2
fi
# The README's figures are written from the results just produced (and checked by tests/unit/test_readme_figures.py).
if [[ -z "${BENCH_RESULTS:-}" ]]; then
    run benchmarks/readme_figures.py
fi
