#!/bin/sh
# Side by side with llama.cpp on the same files, same thread count, same tests: for each
# benchmark model (made by bench/run.sh), meshlm's rows then llama-bench's, interleaved so
# both see the same machine state, then a table of the two with their ratio and each one's
# fraction of the limits meshlm measured in this run. llama.cpp is not a dependency: point LLAMA_BENCH at a
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
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for spec in $models; do
    file="$dir/${spec%%:*}-${spec#*:}.gguf"
    [ -f "$file" ] || { echo "bench/vs-llamacpp.sh: $file is missing; run bench/run.sh first" >&2; exit 1; }
    echo "## $file"
    "$meshlm" bench -m "$file" -p "$p" -n "$n" -t "$threads" -r "$reps" | tee "$tmp/m"
    "$llama" -m "$file" -p "$p" -n "$n" -t "$threads" -r "$reps" | tee "$tmp/l"
    # Each row side by side: the ratio, and both engines' fractions of the limits meshlm
    # measured in this run (llama.cpp's from its t/s: same bytes per token, same FLOPs).
    echo
    echo "| threads | test | meshlm t/s | llama.cpp t/s | ratio | meshlm | llama.cpp |"
    echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
    awk -F'|' '
        FNR == 1 { file++ }
        file == 1 && /read bandwidth/ {
            n = split($0, part, /GB\/s \(/)
            for (i = 2; i <= n; i++) {
                split(part[i], w, " "); split(part[i - 1], v, " ")
                bw[w[1] + 0] = v[length(v)] + 0
            }
        }
        file == 1 && /^\| / && $8 ~ /[0-9]/ {
            key = ($6 + 0) " " trim($7); m[key] = $8 + 0; gb[key] = $9 + 0; fr[key] = $10 + 0; keys[++nk] = key
        }
        file == 2 && /^\| / && $(NF - 1) ~ /[0-9]/ { l[($(NF - 3) + 0) " " trim($(NF - 2))] = $(NF - 1) + 0 }
        function trim(x) { gsub(/^ +| +$/, "", x); return x }
        END {
            for (i = 1; i <= nk; i++) {
                k = keys[i]; split(k, f, " ")
                if (!(k in l) || l[k] == 0) continue
                lf = gb[k] > 0 && bw[f[1]] > 0 ? 100 * l[k] * gb[k] / bw[f[1]] : fr[k] * l[k] / m[k]
                unit = gb[k] > 0 ? "of bw" : "of peak"
                printf "| %d | %s | %.2f | %.2f | %.2fx | %.1f%% %s | %.1f%% %s |\n", f[1], f[2], m[k], l[k], m[k] / l[k], fr[k], unit, lf, unit
            }
        }' "$tmp/m" "$tmp/l"
done
