#!/bin/sh
# A light load on meshlm serve: 32 concurrent streams, 300 requests in six rounds on the
# tiny model: no errors, every greedy text equal to `meshlm run` of its prompt alone, and
# the server's resident memory flat over the rounds.
# usage: server_load.sh MESHLM
meshlm=$1
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/server_lib.sh"
"$meshlm" synth --arch llama --preset tiny --type Q8_0 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
m="$work/tiny.gguf"
n=0
for p in "Hello world" "The quick brown fox" "1 2 3 4" "Once upon a time" "abc def" "What is the capital" \
    "zzz" "Lorem ipsum dolor" "A B C" "meshlm serves"; do
    "$meshlm" run -m "$m" -p "$p" -n 24 --temp 0 -t 1 2>/dev/null >"$work/want$n" || { echo "run failed"; exit 1; }
    printf '%s\n' "$p" >"$work/prompt$n"
    n=$((n + 1))
done
# Under AddressSanitizer, freed memory sits in its quarantine and each connection thread's
# allocator cache, which reads as noise of tens of MB: there the bound is loose, and
# LeakSanitizer at exit (the server must exit 0) is the leak check.
# glibc gives each connection thread an arena of its own, which makes resident memory jump by
# tens of MB with the threads' timing; two arenas keep the reading about the server's memory.
MALLOC_ARENA_MAX=2
export MALLOC_ARENA_MAX
slack=16384
if grep -q __asan_init "$meshlm"; then
    slack=131072
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
    export ASAN_OPTIONS
fi
start_server "$work/log" -m "$m" --parallel 32 -t 1 || exit 1
python3 - "$port" "$pid" "$work" "$slack" <<'PY'
import http.client, json, sys, threading, time
port, pid, work, slack = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
prompts = [open(f"{work}/prompt{i}").read()[:-1] for i in range(10)]
wants = [open(f"{work}/want{i}").read()[:-1] for i in range(10)]
errors, lock = [], threading.Lock()

def one(k):
    i = k % 10
    body = json.dumps({"prompt": prompts[i], "max_tokens": 24, "temperature": 0, "stream": True})
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read().decode("utf-8")
        c.close()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}: {raw[:200]}")
        text = "".join(json.loads(e[6:])["choices"][0]["text"] for e in raw.split("\n\n")
                       if e.startswith("data: {"))
        if not raw.endswith("data: [DONE]\n\n"):
            raise RuntimeError("no [DONE]")
        if text != wants[i]:
            raise RuntimeError(f"prompt {i}: {text!r} != {wants[i]!r}")
    except Exception as e:
        with lock:
            errors.append(f"request {k}: {e}")

def round_of(n, conc=32):
    ks = list(range(n))
    def worker():
        while True:
            with lock:
                if not ks:
                    return
                k = ks.pop()
            one(k)
    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts: t.start()
    for t in ts: t.join()

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

# Six rounds of 50: a leak climbs round after round, allocator noise settles. The later
# rounds must stay within the slack of the highest earlier reading.
round_of(32)
r0 = rss()
t0 = time.time()
rs = []
for _ in range(6):
    round_of(50)
    rs.append(rss())
dt = time.time() - t0
print(f"300 requests in {dt:.1f} s; VmRSS {r0} kB after warm-up, then " + ", ".join(f"{r} kB" for r in rs))
grew = min(rs[3:]) - max(rs[:3]) >= slack or max(rs) >= r0 * 1.5 + slack
ok = not errors and not grew
for e in errors[:10]:
    print("FAIL:", e)
if grew:
    print("FAIL: memory grew")
print(f"{332 - len(errors)} passed, {len(errors) + (0 if ok or errors else 1)} failed")
sys.exit(0 if ok else 1)
PY
rc=$?
metrics=$(curl -s "http://127.0.0.1:$port/metrics")
echo "$metrics" | grep -q '^meshlm:num_requests_running 0' || { echo "FAIL: requests still running"; rc=1; }
echo "$metrics" | grep -q 'finished_reason="abort"} 0' || { echo "FAIL: aborted requests: $(echo "$metrics" | grep abort)"; rc=1; }
stop_server || { echo "FAIL: the server did not exit 0 on SIGTERM"; rc=1; }
pid=""
exit $rc
