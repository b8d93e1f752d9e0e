#!/bin/sh
# meshlm serve over MPI ranks: `mpirun -np 2 meshlm serve --transport mpi --mesh 1x2` answers
# every request as one process on the same mesh does (greedy and seeded sampling, several
# choices, stop strings, streamed or not, many at once, a client leaving mid-stream), and a
# SIGTERM to rank 0 ends the whole job gracefully, exit 0.
# usage: serve_mpi.sh MPIEXEC MESHLM
mpiexec=$1
meshlm=$2
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
work=$(mktemp -d)
pid=""
mpid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; [ -n "$mpid" ] && kill -9 $mpid 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/server_lib.sh"
"$meshlm" synth --arch llama --preset tiny --type Q8_0 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }

# The reference: one process, the same mesh on threads.
start_server "$work/ref.log" -m "$work/tiny.gguf" --mesh 1x2 -t 1 || exit 1
ref_port=$port

# The job: rank 0 serves; its pid is in the log.
mport=""
for try in 1 2 3 4 5 6; do
    mport=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
    timeout -k 5 300 "$mpiexec" -n 2 --oversubscribe --bind-to none "$meshlm" serve --transport mpi --mesh 1x2 \
        -m "$work/tiny.gguf" -t 1 --port "$mport" >"$work/mpi.log" 2>&1 &
    mpid=$!
    i=0
    while [ $i -lt 600 ] && kill -0 "$mpid" 2>/dev/null; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/health")" = 200 ] && break
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/health")" = 200 ] && break
    wait "$mpid" 2>/dev/null
    mpid=""
    grep -q "cannot listen" "$work/mpi.log" || { echo "the MPI server did not start:"; cat "$work/mpi.log"; exit 1; }
done
[ -n "$mpid" ] || { echo "the MPI server found no free port"; exit 1; }
sleep 0.5
rank0=$(sed -n 's/.*rank 0 is pid \([0-9]*\).*/\1/p' "$work/mpi.log")
[ -n "$rank0" ] || { echo "the MPI server did not name rank 0's pid:"; cat "$work/mpi.log"; exit 1; }

python3 - "$ref_port" "$mport" <<'PY'
import http.client, json, sys, threading
ref_port, mpi_port = int(sys.argv[1]), int(sys.argv[2])

def call(port, path, body, leave_after=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    if leave_after is not None:  # a client that leaves mid-stream
        r.read(leave_after)
        c.close()
        return None
    raw = r.read().decode("utf-8")
    c.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: status {r.status}: {raw[:300]}")
    if not body.get("stream"):
        d = json.loads(raw)
        return [ch.get("text", ch.get("message", {}).get("content")) for ch in d["choices"]]
    texts = {}
    for ev in raw.split("\n\n"):
        if not ev.startswith("data: ") or ev == "data: [DONE]":
            continue
        for ch in json.loads(ev[6:])["choices"]:
            piece = ch.get("text", ch.get("delta", {}).get("content")) or ""
            texts[ch["index"]] = texts.get(ch["index"], "") + piece
    return [texts[k] for k in sorted(texts)]

cases = []
for i, p in enumerate(["Hello world", "The quick brown fox", "1 2 3 4", "Once upon a time", "abc def"]):
    cases.append(("/v1/completions", {"prompt": p, "max_tokens": 20, "temperature": 0, "stream": i % 2 == 0}))
    cases.append(("/v1/completions", {"prompt": p, "max_tokens": 16, "temperature": 0.9, "seed": 7 + i, "n": 2}))
    cases.append(("/v1/chat/completions", {"messages": [{"role": "user", "content": p}], "max_tokens": 18,
                                            "temperature": 0.7, "top_k": 20, "seed": i, "stream": i % 2 == 1}))
cases.append(("/v1/completions", {"prompt": "Hello world", "max_tokens": 30, "temperature": 0, "stop": ["e", "u"]}))

want = [call(ref_port, path, body) for path, body in cases]
got = [None] * len(cases)
errors = []

def run(k):
    try:
        got[k] = call(mpi_port, *cases[k])
    except Exception as e:
        errors.append(f"case {k}: {e}")

def leave():
    try:
        call(mpi_port, "/v1/completions", {"prompt": "x", "max_tokens": 400, "stream": True}, leave_after=300)
    except Exception as e:
        errors.append(f"leaving client: {e}")

threads = [threading.Thread(target=run, args=(k,)) for k in range(len(cases))]
threads += [threading.Thread(target=leave) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
fail = len(errors)
for e in errors:
    print("FAIL:", e)
for k, (w, g) in enumerate(zip(want, got)):
    if g is not None and w != g:
        print(f"FAIL: case {k} {cases[k]}: MPI {g!r} vs one process {w!r}")
        fail += 1
# The server keeps serving after clients left: one more request, same answer.
if call(mpi_port, *cases[0]) != want[0]:
    print("FAIL: the answer after clients left differs")
    fail += 1
print(f"{len(cases) - fail} of {len(cases)} requests answered as by one process")
sys.exit(1 if fail else 0)
PY
fail=$?

kill -TERM "$rank0"
i=0
while [ $i -lt 300 ] && kill -0 "$mpid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$mpid" 2>/dev/null; then
    echo "FAIL: the job still runs 30 s after SIGTERM to rank 0"
    fail=1
else
    wait "$mpid"
    rc=$?
    mpid=""
    if [ $rc -ne 0 ]; then
        echo "FAIL: the job exited $rc after SIGTERM to rank 0:"
        cat "$work/mpi.log"
        fail=1
    fi
fi
stop_server || { echo "FAIL: the reference server did not exit 0"; fail=1; }
pid=""
[ $fail -eq 0 ] && echo "serve over MPI: same answers, graceful end"
exit $fail
