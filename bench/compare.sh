#!/bin/sh
# What the optimized tier is worth: `meshlm bench --compare` (generic, performance, and each
# option switched) on the three setups: llama-1b Q8_0 at 1x1 -t 2 and 1x2 -t 1, and
# llama70b-2l Q4_0 at 1x2 -t 1. Models are made with `meshlm synth` and cached in
# $MESHLM_BENCH_DIR (shared with bench/run.sh).
#   bench/compare.sh             # -p 128 -n 32 -r 3
#   PROMPT=512 GEN=128 REPS=5 bench/compare.sh
set -eu
meshlm=${MESHLM:-./build/meshlm}
dir=${MESHLM_BENCH_DIR:-/tmp/meshlm-bench}
prompt=${PROMPT:-128}
gen=${GEN:-32}
reps=${REPS:-3}
mkdir -p "$dir"
model() {
    file="$dir/$1-$2.gguf"
    if [ ! -f "$file" ]; then
        echo "bench/compare.sh: making $file" >&2
        "$meshlm" synth --preset "$1" --type "$2" -o "$file"
    fi
    echo "$file"
}
q8=$(model llama-1b Q8_0)
q4=$(model llama70b-2l Q4_0)
"$meshlm" bench -m "$q8" --compare --mesh 1x1 -t 2 -p "$prompt" -n "$gen" -r "$reps"
"$meshlm" bench -m "$q8" --compare --mesh 1x2 -t 1 -p "$prompt" -n "$gen" -r "$reps"
"$meshlm" bench -m "$q4" --compare --mesh 1x2 -t 1 -p "$prompt" -n "$gen" -r "$reps"
