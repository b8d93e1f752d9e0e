#!/bin/sh
# meshlm serve against llama.cpp's llama-server on the same file, threads and load, measured
# by the same client (meshlm bench-serve): for each concurrency, meshlm's run then
# llama-server's, so both see the same machine state; then multi-turn conversations on
# meshlm with and without the prefix cache. Prints each report and a summary of ratios.
# llama.cpp is not a dependency: point LLAMA_SERVER at a llama-server binary you built.
#   LLAMA_SERVER=~/llama.cpp/build/bin/llama-server bench/serve-vs-llamacpp.sh MODEL.gguf
#   CONC="1 8 32" IN=128 OUT=64 THREADS=2 bench/serve-vs-llamacpp.sh MODEL.gguf
set -eu
model=${1:?usage: bench/serve-vs-llamacpp.sh MODEL.gguf}
meshlm=${MESHLM:-./build/meshlm}
llama=${LLAMA_SERVER:?set LLAMA_SERVER to a llama-server binary}
threads=${THREADS:-2}
conc_list=${CONC:-"1 8 32"}
in=${IN:-128}
out=${OUT:-64}
np=32
ctx=${CTX:-1024}
port=${PORT:-18555}
work=$(mktemp -d)
spid=""
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; rm -rf "$work"' EXIT

wait_ready() {
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ]; do
        kill -0 "$spid" 2>/dev/null || { echo "the server died: $(tail -5 "$work/server.log")" >&2; exit 1; }
        [ $i -lt 1200 ] || { echo "the server is not ready after 120 s" >&2; exit 1; }
        sleep 0.1
        i=$((i + 1))
    done
}

stop() {
    kill -TERM "$spid"
    wait "$spid" || true
    spid=""
}

# serve NAME ARGS...: starts meshlm or llama-server with a context of CTX per sequence.
serve() {
    name=$1
    shift
    if [ "$name" = meshlm ]; then
        "$meshlm" serve -m "$model" --port "$port" -t "$threads" --parallel $np -c "$ctx" --ignore-eos "$@" \
            >"$work/server.log" 2>&1 &
    else
        "$llama" -m "$model" --port "$port" -t "$threads" -np $np -c $((ctx * np)) "$@" >"$work/server.log" 2>&1 &
    fi
    spid=$!
    wait_ready
}

# bench LABEL ARGS...: one bench-serve run, its JSON kept as $work/LABEL.json.
bench() {
    label=$1
    shift
    "$meshlm" bench-serve --url "http://127.0.0.1:$port" --label "$label" --warmup 2 "$@" -o json \
        >"$work/$label.json" || echo "$label: some requests failed; the report counts them" >&2
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], json.dumps(d))' \
        "$work/$label.json" "$label"
}

lscpu | sed -n 's/^Model name: *//p' | head -1 | sed 's/^/cpu: /'
echo "model: $model, threads $threads, $np sequences, input $in tokens, output $out tokens"
for c in $conc_list; do
    n=$((c * 4))
    [ $n -ge 8 ] || n=8
    for who in meshlm llama; do
        serve $who
        bench "$who-c$c" --concurrency "$c" --num-prompts "$n" --input-len "$in" --output-len "$out"
        stop
    done
done
# Multi-turn: a shared system prompt and 4 turns per conversation, each resending its history.
for cache in on off; do
    if [ $cache = on ]; then serve meshlm; else serve meshlm --no-prefix-cache; fi
    bench "meshlm-multiturn-cache-$cache" --dataset multi-turn --concurrency 8 --conversations 8 --turns 4 \
        --shared-prefix 200 --input-len 24 --output-len 24
    stop
done
serve llama
bench "llama-multiturn" --dataset multi-turn --concurrency 8 --conversations 8 --turns 4 --shared-prefix 200 \
    --input-len 24 --output-len 24
stop

python3 - "$work" "$conc_list" <<'PY'
import json, sys
work, concs = sys.argv[1], sys.argv[2].split()
load = lambda k: json.load(open(f"{work}/{k}.json"))
print("\n| streams | server | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | failed |")
print("|---|---|---|---|---|---|---|---|")
for c in concs:
    for who in ("meshlm", "llama"):
        d = load(f"{who}-c{c}")
        print(f"| {c} | {'meshlm serve' if who == 'meshlm' else 'llama-server'} | {d['output_throughput']:.1f} | "
              f"{d['ttft_ms']['p50']:.0f} | {d['ttft_ms']['p99']:.0f} | {d['itl_ms']['p50']:.1f} | {d['itl_ms']['p99']:.1f} | {d['failed']} |")
for c in concs:
    m, l = load(f"meshlm-c{c}"), load(f"llama-c{c}")
    print(f"{c} streams: throughput x{m['output_throughput'] / l['output_throughput']:.2f} of llama-server, "
          f"ITL p99 {m['itl_ms']['p99']:.1f} vs {l['itl_ms']['p99']:.1f} ms")
on, off, ll = load("meshlm-multiturn-cache-on"), load("meshlm-multiturn-cache-off"), load("llama-multiturn")
f = lambda d, k: d[k]["p50"]
print(f"multi-turn, later turns' TTFT p50: prefix cache {f(on, 'ttft_later_turns_ms'):.0f} ms, "
      f"--no-prefix-cache {f(off, 'ttft_later_turns_ms'):.0f} ms "
      f"(x{f(off, 'ttft_later_turns_ms') / f(on, 'ttft_later_turns_ms'):.1f} lower), "
      f"llama-server {f(ll, 'ttft_later_turns_ms'):.0f} ms")
PY
