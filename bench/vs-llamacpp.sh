#!/bin/sh
# Side by side with llama.cpp on the same files, same thread count, same tests: for each
# benchmark model (made by bench/run.sh), meshlm's row then llama-bench's, interleaved so
# both see the same machine state. llama.cpp is not a dependency: point LLAMA_BENCH at a
# llama-bench binary you built.
#   LLAMA_BENCH=~/llama.cpp/build/bin/llama-bench bench/vs-llamacpp.sh
#   P=512 N=128 REPS=3 THREADS=2 MODELS="llama-1b:Q8_0" bench/vs-llamacpp.sh
set -eu
meshlm=${MESHLM:-./build/meshlm}
llama=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}
dir=${MESHLM_BENCH_DIR:-/tmp/meshlm-bench}
threads=${THREADS:-2}
reps=${REPS:-3}
p=${P:-512}
n=${N:-128}
models=${MODELS:-"llama-1b:BF16 llama-1b:Q8_0 llama-1b:Q4_0 llama-1b:Q4_K llama70b-2l:Q4_0"}
for spec in $models; do
    file="$dir/${spec%%:*}-${spec#*:}.gguf"
    [ -f "$file" ] || { echo "bench/vs-llamacpp.sh: $file is missing; run bench/run.sh first" >&2; exit 1; }
    echo "## $file"
    "$meshlm" bench -m "$file" -p "$p" -n "$n" -t "$threads" -r "$reps"
    "$llama" -m "$file" -p "$p" -n "$n" -t "$threads" -r "$reps"
done
