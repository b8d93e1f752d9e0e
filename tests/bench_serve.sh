#!/bin/sh
# meshlm bench-serve against meshlm serve on the tiny model: the text and JSON reports, the
# three workloads, the chat endpoint, an API key, Ctrl-C, a closed port and bad options; and
# against a scripted python3 server, a stream cut off mid-way and one with CRLF line ends.
# usage: bench_serve.sh MESHLM
# shellcheck disable=SC2016,SC2034,SC2086 # the checks are eval'd; $ids splits on purpose
meshlm=$1
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
work=$(mktemp -d)
pid=""
fake=""
bpid=""
trap 'kill -9 $pid $fake $bpid 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/server_lib.sh"
n=0
failed=0
# check COND DESCRIPTION [DETAIL]: DETAIL (evaluated) is printed when COND fails.
check() {
    n=$((n + 1))
    if eval "$1"; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        [ -n "$3" ] && eval "echo \"    $3\""
        failed=$((failed + 1))
    fi
}
# j FILE EXPR: the Python expression over d, the JSON report in FILE, is true.
j() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" 2>/dev/null; }

"$meshlm" synth --arch llama --preset tiny --type Q8_0 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
# A server that generates max_tokens every time makes the output token count exact.
exact=0
if "$meshlm" serve --help | grep -q -- --ignore-eos; then exact=1; fi
if [ $exact -eq 1 ]; then
    start_server "$work/log" -m "$work/tiny.gguf" --parallel 8 -t 1 --ignore-eos || exit 1
else
    start_server "$work/log" -m "$work/tiny.gguf" --parallel 8 -t 1 || exit 1
fi
url="http://127.0.0.1:$port"
bs() { "$meshlm" bench-serve --url "$url" "$@"; }
ids="--token-lo 10 --token-hi 1000"

bs --concurrency 4 --num-prompts 16 --input-len 32 --output-len 8 $ids --label first >"$work/text" 2>"$work/err"
rc=$?
check '[ $rc -eq 0 ]' "random dataset, text report: exit 0" \
    '$rc: $(cat "$work/err")'
missing=""
for field in "Label:  *first" "Successful requests:  *16" "Failed requests:  *0" "Benchmark duration (s):" \
    "Total input tokens:  *512" "Total generated tokens:" "Request throughput (req/s):" \
    "Output token throughput (tok/s):" "Total token throughput (tok/s):" "Mean TTFT (ms):" "Median TTFT (ms):" \
    "P99 TTFT (ms):" "Mean TPOT (ms):" "Median ITL (ms):" "P99 ITL (ms):" "Mean E2EL (ms):"; do
    grep -q "^$field" "$work/text" || missing="$missing [$field]"
done
check '[ -z "$missing" ]' "the text report has every field" \
    'missing:$missing'

bs --concurrency 4 --num-prompts 16 --input-len 32 --output-len 8 $ids -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 0 ] && j "$work/json" "d[\"completed\"] == 16 and d[\"failed\"] == 0"' \
    "-o json: 16 completed, none failed" \
    '$rc: $(cat "$work/json" "$work/err")'
want="0 < d[\"total_output_tokens\"] <= 16 * 8" out="in (0, 16 x 8]"
[ $exact -eq 1 ] && want="d[\"total_output_tokens\"] == 16 * 8" out="16 x 8"
check 'j "$work/json" "$want and d[\"total_input_tokens\"] == 16 * 32"' \
    "token counts: input 16 x 32, output $out" '$(cat "$work/json")'
check 'j "$work/json" "d[\"ttft_ms\"][\"p50\"] <= d[\"ttft_ms\"][\"p99\"] and d[\"itl_ms\"][\"count\"] > 0 and d[\"itl_ms\"][\"mean\"] is not None and d[\"tpot_ms\"][\"count\"] > 0 and d[\"e2e_ms\"][\"count\"] == 16 and d[\"output_throughput\"] > 0"' \
    "latencies: TTFT p50 <= p99, ITL, TPOT and E2E present"

bs --endpoint /v1/chat/completions --concurrency 4 --num-prompts 8 --input-len 12 --output-len 8 -o json \
    >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 0 ] && j "$work/json" "d[\"completed\"] == 8 and d[\"failed\"] == 0 and d[\"total_input_tokens\"] > 0 and d[\"ttft_ms\"][\"count\"] > 0"' \
    "chat endpoint, random words" \
    '$rc: $(cat "$work/err")'

bs --dataset multi-turn --concurrency 2 --conversations 3 --turns 3 --shared-prefix 40 --input-len 10 \
    --output-len 8 -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 0 ] && j "$work/json" "d[\"completed\"] == 9 and d[\"failed\"] == 0 and d[\"ttft_first_turn_ms\"][\"count\"] == 3 and d[\"ttft_later_turns_ms\"][\"count\"] == 6"' \
    "multi-turn: 3 conversations x 3 turns, TTFT of first and later turns" \
    '$rc: $(cat "$work/json" "$work/err")'
bs --dataset multi-turn --concurrency 2 --turns 2 --shared-prefix 20 --input-len 5 --output-len 4 >"$work/text" 2>&1
check 'grep -q "TTFT, first turns" "$work/text" && grep -q "TTFT, later turns" "$work/text"' \
    "multi-turn text report has both TTFT splits"

bs --dataset fixed --prompt "Once upon a time" --concurrency 2 --num-prompts 4 --output-len 8 --warmup 2 \
    --request-rate 50 -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 0 ] && j "$work/json" "d[\"completed\"] == 4 and d[\"request_rate\"] == 50" && grep -q "warm-up" "$work/err"' \
    "fixed prompt with warm-up and a request rate" \
    '$rc: $(cat "$work/err")'

# Ctrl-C: what finished is reported, exit 130. (The handler is in place once the run is
# announced: a background job starts with SIGINT ignored until then.)
"$meshlm" bench-serve --url "$url" --concurrency 4 --num-prompts 100000 --input-len 16 --output-len 400 $ids \
    >"$work/text" 2>"$work/err" &
bpid=$!
i=0
while ! grep -q "requests to" "$work/err" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
kill -INT $bpid
i=0
while kill -0 $bpid 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 $bpid 2>/dev/null
wait $bpid
rc=$?
bpid=""
check '[ $rc -eq 130 ] && grep -q "^Interrupted:  *yes" "$work/text" && grep -q "^Successful requests:" "$work/text"' \
    "Ctrl-C prints the report and exits 130" \
    '$rc: $(tail -2 "$work/err")'

# Nothing listening: a clear message, exit 1 (with and without --model).
bs_closed() { "$meshlm" bench-serve --url "http://127.0.0.1:1" "$@" >/dev/null 2>"$work/err"; }
bs_closed
rc=$?
check '[ $rc -eq 1 ] && grep -q "cannot reach" "$work/err"' "closed port: exit 1 with a message" \
    '$rc: $(cat "$work/err")'
bs_closed --model tiny --num-prompts 3
rc=$?
check '[ $rc -eq 1 ] && grep -q "is the server running" "$work/err"' \
    "closed port with --model: exit 1 with a message" \
    '$rc: $(cat "$work/err")'

bad=""
for args in "--concurrency 0" "--num-prompts x" "--token-lo 9 --token-hi 9" "--request-rate 0" "--dataset nope" \
    "-o xml" "--bogus" "--input-len" "--num-prompts 2 --concurrency 4" "--dataset fixed" \
    "--dataset multi-turn --endpoint /v1/completions" "--dataset multi-turn --num-prompts 4" "--endpoint v1"; do
        bs $args >/dev/null 2>"$work/err"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$work/err" ] || bad="$bad [$args: $rc]"
done
"$meshlm" bench-serve --concurrency 2 >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || bad="$bad [no --url: $rc]"
check '[ -z "$bad" ]' "bad options exit 2 with a message" \
    'wrong:$bad'
check '"$meshlm" bench-serve --help | grep -q -- "--request-rate"' "--help lists the options"

stop_server || { echo "FAIL: the server did not exit 0 on SIGTERM"; failed=$((failed + 1)); }
pid=""

# An API key: refused without it (no model list: 401), and with --model every request fails.
start_server "$work/log" -m "$work/tiny.gguf" --parallel 4 -t 1 --api-key sekret || exit 1
url="http://127.0.0.1:$port"
bs --num-prompts 2 --output-len 4 $ids >/dev/null 2>"$work/err"
rc=$?
check '[ $rc -eq 1 ] && grep -q "401" "$work/err"' "API key missing: exit 1, 401 said" \
    '$rc: $(cat "$work/err")'
bs --model tiny --num-prompts 2 --output-len 4 $ids -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 1 ] && j "$work/json" "d[\"failed\"] == 2" && grep -q "401" "$work/err"' \
    "API key missing with --model: every request failed" \
    '$rc'
bs --api-key sekret --concurrency 2 --num-prompts 4 --input-len 8 --output-len 4 $ids -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 0 ] && j "$work/json" "d[\"completed\"] == 4"' "with --api-key: all succeed" \
    '$rc: $(cat "$work/err")'
stop_server || { echo "FAIL: the server did not exit 0 on SIGTERM"; failed=$((failed + 1)); }
pid=""

# A scripted server: /cut sends one event and ends the reply, /chunked drops the connection
# in the middle of a chunked reply; /crlf streams events
# with CRLF line ends, a comment, an event split over writes and usage in its own chunk.
cat >"$work/fake.py" <<'PY'
import http.server, json, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = b'{"object":"list","data":[{"id":"fake","object":"model"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = lambda t: ("data: " + json.dumps({"choices": [{"index": 0, "text": t}]}) + "\r\n\r\n").encode()
        if self.path.startswith("/chunked"):
            # A chunked reply that stops after its first chunk: the connection drops mid-body.
            data = chunk("Hello")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/cut"):
            self.wfile.write(chunk("Hello"))
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(b": a comment\r\n\r\n" + chunk("one"))
        self.wfile.flush()
        time.sleep(0.01)
        half = chunk(" two")
        self.wfile.write(half[:9]); self.wfile.flush(); time.sleep(0.01)
        self.wfile.write(half[9:] + chunk(" three"))
        usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
        self.wfile.write(("data: " + json.dumps(usage) + "\r\n\r\ndata: [DONE]\r\n\r\n").encode())
        self.close_connection = True
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
python3 "$work/fake.py" "$work/fakeport" &
fake=$!
i=0
while [ ! -s "$work/fakeport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
url="http://127.0.0.1:$(cat "$work/fakeport")"
bs --endpoint /cut/v1/completions --concurrency 2 --num-prompts 4 -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 1 ] && j "$work/json" "d[\"failed\"] == 4 and d[\"completed\"] == 0" && grep -q "request failed" "$work/err"' \
    "a stream cut off: every request failed, exit 1" \
    '$rc: $(cat "$work/err")'
bs --endpoint /chunked/v1/completions --concurrency 2 --num-prompts 4 -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 1 ] && j "$work/json" "d[\"failed\"] == 4" && grep -q "transfer failed" "$work/err"' \
    "the connection closed mid-body: every request failed, exit 1" \
    '$rc: $(cat "$work/err")'
bs --endpoint /crlf/v1/completions --concurrency 2 --num-prompts 4 -o json >"$work/json" 2>"$work/err"
rc=$?
check '[ $rc -eq 0 ] && j "$work/json" "d[\"completed\"] == 4 and d[\"total_output_tokens\"] == 12 and d[\"total_input_tokens\"] == 28 and d[\"itl_ms\"][\"count\"] == 8 and d[\"model\"] == \"fake\""' \
    "CRLF events, a comment, an event split over writes, usage counted" \
    '$rc: $(cat "$work/json" "$work/err")'
kill $fake 2>/dev/null
wait $fake 2>/dev/null
fake=""

echo "$n checks, $failed failed"
[ $failed -eq 0 ]
