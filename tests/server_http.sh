#!/bin/sh
# meshlm serve driven with curl: every endpoint and the chat page's headers (--no-webui:
# 404), streamed and not, greedy texts equal to `meshlm run` / `meshlm chat`, stop strings,
# 30+ malformed requests each a 4xx with OpenAI's error JSON while the server keeps serving,
# a client leaving mid-stream, a full queue (503 + Retry-After), API keys, timeouts and
# SIGTERM.
# usage: server_http.sh MESHLM
meshlm=$1
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
work=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; rm -rf "$work"' EXIT
. "$(dirname "$0")/server_lib.sh"
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

"$meshlm" synth --arch llama --preset tiny --type Q8_0 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
m="$work/tiny.gguf"

# While the model loads, /health and the API answer 503 with Retry-After. A named pipe holds
# the load (opening it waits for a writer); what is then written is no model file, so the
# server ends with a clear error, non-zero.
mkfifo "$work/loading.gguf"
lport=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
"$meshlm" serve -m "$work/loading.gguf" --port "$lport" >"$work/lload" 2>&1 &
lpid=$!
pids="$lpid"
i=0
until curl -s -D "$work/lh" -o "$work/lb" "http://127.0.0.1:$lport/health" || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
check 'head -1 "$work/lh" | grep -q " 503" && grep -qi "^Retry-After: 1" "$work/lh" && grep -q "Loading model" "$work/lb"' \
    "/health while loading: $(head -1 "$work/lh") $(cat "$work/lb")"
lcode=$(curl -s -o "$work/lb" -w '%{http_code}' --data-binary '{"prompt":"x"}' "http://127.0.0.1:$lport/v1/completions")
check '[ "$lcode" = 503 ] && python3 -c "import json,sys; e=json.load(open(sys.argv[1]))[\"error\"]; assert e[\"type\"] and e[\"message\"]" "$work/lb"' \
    "a completion while loading: $lcode $(cat "$work/lb")"
# In a subshell: the server may close the pipe before the write lands, and the SIGPIPE that
# brings must not end this script.
(echo "not a model" >"$work/loading.gguf") 2>/dev/null
wait "$lpid"
lrc=$?
check '[ $lrc -ne 0 ] && grep -q "loading.gguf" "$work/lload"' "a server whose model fails to load: exit $lrc, $(cat "$work/lload")"
start_server "$work/log" -m "$m" --alias tiny-test --parallel 4 -t 1 --timeout 3 || exit 1
pids="$pid"
url="http://127.0.0.1:$port"

# post PATH BODY OUT: the status code; the body goes to OUT.
post() { curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$2" "$url$1"; }

# sse FILE: the streamed text of each choice joined, after checking the event format:
# data: lines separated by blank lines, JSON chunks, [DONE] last, a finish_reason per
# choice, chat's first chunk carrying the role. Prints "text|finish|usage_total".
sse() {
    python3 - "$1" <<'PY'
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
events = raw.split("\n\n")
assert events[-1] == "", "the stream does not end with a blank line"
events = events[:-1]
assert events[-1] == "data: [DONE]", "no [DONE] last"
text, finish, usage, first = {}, {}, "-", True
for e in events[:-1]:
    if e.startswith(":"):
        continue
    assert e.startswith("data: "), "not a data event: %r" % e[:40]
    c = json.loads(e[6:])
    if c.get("usage"):
        usage = str(c["usage"]["total_tokens"])
        assert c["choices"] == []
        continue
    for ch in c["choices"]:
        i = ch["index"]
        if c["object"] == "chat.completion.chunk":
            if first:
                assert ch["delta"].get("role") == "assistant", "no role in the first chunk"
            text[i] = text.get(i, "") + (ch["delta"].get("content") or "")
        else:
            assert c["object"] == "text_completion"
            text[i] = text.get(i, "") + ch["text"]
        if ch["finish_reason"]:
            finish[i] = ch["finish_reason"]
    first = False
assert sorted(finish) == sorted(text), "a choice without finish_reason"
print("\x1e".join(text[i] for i in sorted(text)) + "|" + ",".join(finish[i] for i in sorted(finish)) + "|" + usage, end="")
PY
}

# ---- health, models, metrics
code=$(curl -s -o "$work/out" -w '%{http_code}' "$url/health")
check '[ "$code" = 200 ] && [ "$(json "$work/out" "d[\"status\"]")" = ok ]' "health: $code $(cat "$work/out")"
code=$(curl -s -o "$work/out" -w '%{http_code}' "$url/v1/models")
check '[ "$code" = 200 ] && [ "$(json "$work/out" "d[\"data\"][0][\"id\"]")" = tiny-test ]' "models: $(cat "$work/out")"
check '[ "$(json "$work/out" "d[\"data\"][0][\"max_model_len\"]")" = 512 ]' "models: no max_model_len 512: $(cat "$work/out")"
# the chat page: HTML with a Content-Security-Policy, whole, for GET and HEAD
code=$(curl -s -D "$work/ph" -o "$work/page" -w '%{http_code}' "$url/")
check '[ "$code" = 200 ] && grep -qi "^Content-Type: text/html; charset=utf-8" "$work/ph" && grep -qi "^Content-Security-Policy: default-src .none.;" "$work/ph" && grep -q "<title>meshlm chat</title>" "$work/page" && tail -c 8 "$work/page" | grep -q "</html>"' \
    "GET /: $code $(cat "$work/ph")"
code=$(curl -s -I -o "$work/ph" -w '%{http_code}' "$url/")
check '[ "$code" = 200 ] && grep -qi "^Content-Length: $(wc -c <"$work/page")" "$work/ph"' "HEAD /: $code $(cat "$work/ph")"
curl -s "$url/metrics" >"$work/metrics"
for name in num_requests_running num_requests_waiting kv_cache_usage_perc prompt_tokens_total generation_tokens_total \
    'request_success_total{finished_reason="abort"}' time_to_first_token_seconds_bucket inter_token_latency_seconds_sum \
    e2e_request_latency_seconds_count request_queue_time_seconds_bucket; do
    check 'grep -q "^meshlm:$name" "$work/metrics"' "metrics lacks meshlm:$name"
done

# ---- completions: greedy text equal to `meshlm run`, streamed and not
for p in "Hello world" "The quick brown fox" "1 2 3"; do
    "$meshlm" run -m "$m" -p "$p" -n 12 --temp 0 -t 1 2>/dev/null >"$work/want"
    body=$(python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 12, "temperature": 0}))' "$p")
    code=$(post /v1/completions "$body" "$work/out")
    got=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["choices"][0]["text"] == open(sys.argv[2]).read()[:-1], d["usage"]["completion_tokens"] <= 12, d["object"], d["model"])' "$work/out" "$work/want")
    check '[ "$code" = 200 ] && [ "$got" = "True True text_completion tiny-test" ]' "completion '$p': $code $got $(cat "$work/out")"
    body=$(python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 12, "temperature": 0, "stream": True}))' "$p")
    post /v1/completions "$body" "$work/stream" >/dev/null
    text=$(sse "$work/stream" | cut -d'|' -f1)
    check '[ "$text" = "$(json "$work/out" "d[\"choices\"][0][\"text\"]")" ]' "streamed completion differs: '$text'"
done

# ---- chat: greedy text equal to `meshlm chat`, streamed and not
echo "Hello" | "$meshlm" chat -m "$m" -n 8 --temp 0 -t 1 2>/dev/null >"$work/want"
code=$(post /v1/chat/completions '{"model":"tiny-test","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0}' "$work/out")
got=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d["choices"][0]["message"]; print(m["content"] == open(sys.argv[2]).read()[:-1], m["role"], d["object"], d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"])' "$work/out" "$work/want")
check '[ "$code" = 200 ] && [ "$got" = "True assistant chat.completion True" ]' "chat: $code $got $(cat "$work/out") want $(cat "$work/want")"
post /v1/chat/completions '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' "$work/stream" >/dev/null
res=$(sse "$work/stream")
check '[ "${res%%|*}" = "$(json "$work/out" "d[\"choices\"][0][\"message\"][\"content\"]")" ] && [ "${res##*|}" = "$(json "$work/out" "str(d[\"usage\"][\"total_tokens\"])")" ]' "streamed chat differs: '$res'"
# the file's base name, with or without .gguf, and content as text parts
for name in tiny.gguf tiny; do
    code=$(post /v1/chat/completions "{\"model\":\"$name\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hel\"},{\"type\":\"text\",\"text\":\"lo\"}]}],\"max_tokens\":8,\"temperature\":0}" "$work/out2")
    check '[ "$code" = 200 ] && [ "$(json "$work/out2" "d[\"choices\"][0][\"message\"][\"content\"]")" = "$(json "$work/out" "d[\"choices\"][0][\"message\"][\"content\"]")" ]' "model '$name': $code $(cat "$work/out2")"
done

# ---- the prefix cache: the same long prompt again takes its full pages from the cache and
# gives the same text
long_prompt=$(python3 -c 'print("Once upon a time in a kingdom by the sea " * 12, end="")')
body=$(python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 6, "temperature": 0}))' "$long_prompt")
post /v1/completions "$body" "$work/pc1" >/dev/null
before=$(curl -s "$url/metrics" | sed -n 's/^meshlm:prefix_cache_hits_total //p')
post /v1/completions "$body" "$work/pc2" >/dev/null
after=$(curl -s "$url/metrics" | sed -n 's/^meshlm:prefix_cache_hits_total //p')
check '[ -n "$after" ] && [ "$after" -gt "${before:-0}" ] && [ "$(json "$work/pc1" "d[\"choices\"][0][\"text\"]")" = "$(json "$work/pc2" "d[\"choices\"][0][\"text\"]")" ]' \
    "prefix cache: hits $before -> $after, texts '$(cat "$work/pc1")' / '$(cat "$work/pc2")'"

# ---- stop strings: the text ends before the first occurrence, finish_reason stop
post /v1/completions '{"prompt":"The quick brown fox","max_tokens":24,"temperature":0}' "$work/full" >/dev/null
stop=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["choices"][0]["text"]; print(t[5:7], end="")' "$work/full")
want=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["choices"][0]["text"]; print(t[:t.index(sys.argv[2])], end="")' "$work/full" "$stop")
for stream in false true; do
    body=$(python3 -c 'import json,sys; print(json.dumps({"prompt": "The quick brown fox", "max_tokens": 24, "temperature": 0, "stop": ["zzzz", sys.argv[1]], "stream": sys.argv[2] == "true"}))' "$stop" "$stream")
    post /v1/completions "$body" "$work/out" >/dev/null
    if [ $stream = true ]; then res=$(sse "$work/out"); else res=$(json "$work/out" 'd["choices"][0]["text"] + "|" + d["choices"][0]["finish_reason"]'); fi
    check '[ "${res%%|*}" = "$want" ] && echo "$res" | grep -q "|stop"' "stop '$stop' (stream $stream): '$res', want '$want'"
done

# ---- several prompts, token ids, n
post /v1/completions '{"prompt":["Hello world","1 2 3"],"max_tokens":12,"temperature":0}' "$work/out" >/dev/null
"$meshlm" run -m "$m" -p "1 2 3" -n 12 --temp 0 -t 1 2>/dev/null >"$work/want"
got=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["choices"]), d["choices"][1]["index"], d["choices"][1]["text"] == open(sys.argv[2]).read()[:-1])' "$work/out" "$work/want")
check '[ "$got" = "2 1 True" ]' "two prompts: $got $(cat "$work/out")"
post /tokenize '{"content":"Hello world","add_special":true}' "$work/tok" >/dev/null
ids=$(json "$work/tok" 'd["tokens"]')
post /v1/completions "{\"prompt\":$ids,\"max_tokens\":12,\"temperature\":0}" "$work/out2" >/dev/null
check '[ "$(json "$work/out2" "d[\"choices\"][0][\"text\"]")" = "$(json "$work/out" "d[\"choices\"][0][\"text\"]")" ]' "token-id prompt differs: $(cat "$work/out2")"
post /v1/completions "{\"prompt\":[$ids,$ids],\"max_tokens\":4,\"temperature\":0,\"n\":2}" "$work/out2" >/dev/null
check '[ "$(json "$work/out2" "len(d[\"choices\"])")" = 4 ]' "2 token-id prompts x n=2: $(cat "$work/out2")"
post /detokenize "{\"tokens\":$(json "$work/tok" 'd["tokens"][1:]')}" "$work/out" >/dev/null
check '[ "$(json "$work/out" "d[\"content\"]")" = "Hello world" ]' "detokenize: $(cat "$work/out")"
code=$(post /v1/completions '{"prompt":"Hi","max_tokens":3,"temperature":0.9,"top_k":5,"top_p":0.9,"min_p":0.01,"seed":7,"presence_penalty":0,"logprobs":null,"logit_bias":{}}' "$work/out")
check '[ "$code" = 200 ] && [ "$(json "$work/out" "d[\"usage\"][\"completion_tokens\"] <= 3")" = true ]' "sampling fields: $code $(cat "$work/out")"

# ---- malformed requests: each a 4xx with OpenAI's error JSON
big=$(python3 -c 'print("[" * 5000 + "]" * 5000)')
i=0
while IFS='	' read -r want method path body; do
    i=$((i + 1))
    code=$(curl -s -o "$work/err" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' --data-binary "$body" "$url$path")
    shape=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; print(isinstance(e["message"], str) and len(e["message"]) > 0 and "type" in e and "param" in e and "code" in e)' "$work/err" 2>/dev/null)
    check '[ "$code" = "$want" ] && [ "$shape" = True ]' "malformed #$i ($method $path $body): $code, want $want: $(head -c 300 "$work/err")"
done <<EOF2
400	POST	/v1/chat/completions	not json
400	POST	/v1/chat/completions	
400	POST	/v1/chat/completions	[1,2]
400	POST	/v1/chat/completions	{"messages":"hi"}
400	POST	/v1/chat/completions	{"messages":[]}
400	POST	/v1/chat/completions	{}
400	POST	/v1/chat/completions	{"messages":[{"role":"wizard","content":"x"}]}
400	POST	/v1/chat/completions	{"messages":[{"content":"x"}]}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":5}]}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"max_tokens":-5}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"max_tokens":"10"}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"max_tokens":99999999999}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"temperature":-1}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"top_p":1.5}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"top_k":-1}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"n":0}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"stream":"yes"}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"stop":[""]}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"stop":5}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"logprobs":true}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"presence_penalty":0.5}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"frequency_penalty":1}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"logit_bias":{"5":10}}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"max_tokens":600}
404	POST	/v1/chat/completions	{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}
400	POST	/v1/chat/completions	{"messages":[{"role":"user","content":"x"}],"stream_options":[]}
400	POST	/v1/completions	{"prompt":5}
400	POST	/v1/completions	{"prompt":[]}
400	POST	/v1/completions	{"prompt":[1,-2]}
400	POST	/v1/completions	{"prompt":[99999]}
400	POST	/v1/completions	{"prompt":[[1],"x",7]}
400	POST	/v1/completions	{"prompt":"x","echo":true}
400	POST	/v1/completions	{"prompt":"x","max_tokens":0}
400	POST	/v1/completions	{"prompt":"x","seed":1.5}
400	POST	/tokenize	{"content":5}
400	POST	/detokenize	{"tokens":"abc"}
400	POST	/detokenize	{"tokens":[100000]}
400	POST	/v1/completions	$big
404	GET	/v1/nothing	
404	POST	/v2/chat/completions	{}
405	GET	/v1/chat/completions	
405	POST	/	{}
405	POST	/health	{}
405	DELETE	/v1/models	
EOF2
# invalid UTF-8 inside a string
printf '{"prompt":"\377\376","max_tokens":2}' >"$work/badutf8"
code=$(curl -s -o "$work/err" -w '%{http_code}' --data-binary @"$work/badutf8" "$url/v1/completions")
check '[ "$code" = 400 ]' "invalid UTF-8: $code $(cat "$work/err")"
# prompt past the context: OpenAI's message
python3 -c 'import json; print(json.dumps({"prompt": "hello " * 2000, "max_tokens": 4}))' >"$work/long"
code=$(curl -s -o "$work/err" -w '%{http_code}' --data-binary @"$work/long" "$url/v1/completions")
check '[ "$code" = 400 ] && grep -q "maximum context length is 512 tokens" "$work/err"' "long prompt: $code $(cat "$work/err")"
# a body over the limit (8 MiB)
head -c 9000000 /dev/zero | tr '\0' 'a' >"$work/huge"
code=$(curl -s -o "$work/err" -w '%{http_code}' --data-binary @"$work/huge" "$url/v1/completions")
check '[ "$code" = 413 ]' "huge body: $code"
# a slow body: the connection is closed after --timeout (3 s), and others are served meanwhile
res=$(python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":")
t0 = time.time()
s.settimeout(20)
try:
    data = s.recv(100)
except (socket.timeout, ConnectionResetError):
    data = b"timeout"
print("closed" if data in (b"",) or data.startswith(b"HTTP/1.1 4") else repr(data[:40]), round(time.time() - t0) <= 8)
PY
)
check '[ "$res" = "closed True" ]' "slow body: $res"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health")
check '[ "$code" = 200 ]' "after the malformed requests, health is $code"

# ---- SIGTERM: exit 0
stop_server
rc=$?
check '[ $rc -eq 0 ]' "SIGTERM: exit $rc: $(tail -3 "$work/log")"

# ---- a slower model: a client leaving mid-stream, a full queue, API keys, a drain on SIGTERM
"$meshlm" synth --arch llama --n-embd 512 --n-layer 8 --n-head 8 --n-head-kv 8 --n-ff 1536 --n-vocab 512 \
    --n-ctx 8192 --type F32 -o "$work/slow.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
printf 'sekrit\n' >"$work/key"
start_server "$work/log2" -m "$work/slow.gguf" -c 4096 --parallel 1 --max-queue 1 -t 1 --api-key-file "$work/key" --grace 2 \
    --no-webui || exit 1
pids="$pids $pid"
url="http://127.0.0.1:$port"
auth='Authorization: Bearer sekrit'
long='{"prompt":"Once upon a time","max_tokens":4000,"temperature":0,"stream":true}'
code=$(curl -s -o "$work/err" -w '%{http_code}' -H "$auth" "$url/")
check '[ "$code" = 404 ] && [ "$(json "$work/err" "d[\"error\"][\"type\"]")" = not_found_error ]' "GET / with --no-webui: $code $(cat "$work/err")"
code=$(curl -s -o "$work/err" -w '%{http_code}' "$url/v1/models")
check '[ "$code" = 401 ] && grep -q authentication_error "$work/err"' "no key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' "$url/v1/models")
check '[ "$code" = 401 ]' "wrong key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$url/v1/models")
check '[ "$code" = 200 ]' "Bearer key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Api-Key: sekrit' "$url/v1/models")
check '[ "$code" = 200 ]' "X-Api-Key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health")
check '[ "$code" = 200 ]' "health without a key: $code"

# A client that gives up after 1 s: its request is aborted, nothing is left running.
curl -s -N --max-time 1 -H "$auth" --data-binary "$long" "$url/v1/completions" >"$work/partial"
check 'grep -q "^data: {" "$work/partial"' "the long stream sent nothing in 1 s"
i=0
while [ $i -lt 50 ]; do
    curl -s -H "$auth" "$url/metrics" >"$work/metrics"
    grep -q '^meshlm:num_requests_running 0' "$work/metrics" && grep -q 'finished_reason="abort"} 1' "$work/metrics" && break
    sleep 0.1
    i=$((i + 1))
done
check '[ $i -lt 50 ]' "after a disconnect: $(grep -E 'running|abort' "$work/metrics")"

# --parallel 1 --max-queue 1: a third concurrent request gets 503 with Retry-After.
cpids=""
for k in 1 2 3; do
    curl -s -N -D "$work/h$k" -o "$work/b$k" --max-time 4 -H "$auth" --data-binary "$long" "$url/v1/completions" &
    cpids="$cpids $!"
done
wait $cpids
n503=$(grep -l '^HTTP/1.1 503' "$work/h1" "$work/h2" "$work/h3" | wc -l)
retry=$(grep -il '^Retry-After: ' "$work/h1" "$work/h2" "$work/h3" | wc -l)
check '[ "$n503" -eq 1 ] && [ "$retry" -eq 1 ]' "queue full: $n503 answers 503, $retry with Retry-After ($(head -1 "$work/h1" "$work/h2" "$work/h3" | tr -d '\r'))"
i=0
while [ $i -lt 50 ] && ! curl -s -H "$auth" "$url/metrics" | grep -q '^meshlm:num_requests_running 0'; do
    sleep 0.1
    i=$((i + 1))
done
check '[ $i -lt 50 ]' "the queue did not drain after its clients left"
code=$(curl -s -o "$work/out" -w '%{http_code}' -H "$auth" --data-binary '{"prompt":"Hi","max_tokens":2}' "$url/v1/completions")
check '[ "$code" = 200 ]' "served after the queue test: $code"

# SIGTERM with a stream in flight: it ends within the grace period, exit 0.
curl -s -N -H "$auth" --data-binary "$long" "$url/v1/completions" >"$work/drain" &
cpid=$!
sleep 0.5
t0=$(date +%s)
stop_server
rc=$?
t1=$(date +%s)
wait $cpid
check '[ $rc -eq 0 ] && [ $((t1 - t0)) -le 6 ]' "SIGTERM mid-stream: exit $rc after $((t1 - t0)) s"
check 'tail -c 20 "$work/drain" | grep -q "data: \[DONE\]"' "the drained stream did not end with [DONE]: $(tail -c 200 "$work/drain")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
