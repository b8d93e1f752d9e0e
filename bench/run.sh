#!/bin/sh
# The standard benchmark table: makes the benchmark models with `meshlm synth` (random
# weights, every matrix in the named type, so bytes per token match the real shapes) and
# runs `meshlm bench` on each. Models are cached in $MESHLM_BENCH_DIR (several GB).
#   bench/run.sh                 # llama-1b BF16/Q8_0/Q4_0/Q4_K, llama70b-2l Q4_0; -t 2
#   THREADS=1,2 REPS=5 FORMAT=json MESH=1x1,1x2 bench/run.sh
set -eu
meshlm=${MESHLM:-./build/meshlm}
dir=${MESHLM_BENCH_DIR:-/tmp/meshlm-bench}
threads=${THREADS:-2}
reps=${REPS:-3}
format=${FORMAT:-md}
mesh=${MESH:-1x1}
models=${MODELS:-"llama-1b:BF16 llama-1b:Q8_0 llama-1b:Q4_0 llama-1b:Q4_K llama70b-2l:Q4_0"}
mkdir -p "$dir"
for spec in $models; do
    preset=${spec%%:*}
    type=${spec#*:}
    file="$dir/$preset-$type.gguf"
    if [ ! -f "$file" ]; then
        echo "bench/run.sh: making $file" >&2
        "$meshlm" synth --preset "$preset" --type "$type" -o "$file"
    fi
    "$meshlm" bench -m "$file" -p 512 -n 128 -t "$threads" -r "$reps" --mesh "$mesh" -o "$format"
done
