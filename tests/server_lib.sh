# Shared by the server tests (sourced): start `meshlm serve` on a free random port, wait
# until /health says ready, stop it; a python3 helper reads JSON.
# Needs: $meshlm set to the binary.

# start_server LOG ARGS...: sets $port and $pid; retries on a port that is taken.
start_server() {
    log=$1
    shift
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
        "$meshlm" serve --port "$port" "$@" >"$log" 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 600 ] && kill -0 "$pid" 2>/dev/null; do
            code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" 2>/dev/null)
            [ "$code" = 200 ] && return 0
            sleep 0.1
            i=$((i + 1))
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        grep -q "cannot listen" "$log" || { echo "server did not start: $(cat "$log")"; return 1; }
    done
    return 1
}

# stop_server: SIGTERM, and the exit status (0 expected).
stop_server() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
}

# json FILE EXPR: prints the Python expression EXPR over d, the JSON in FILE.
json() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1], encoding="utf-8")); r=eval(sys.argv[2]); sys.stdout.write(r if isinstance(r, str) else json.dumps(r))' "$1" "$2"
}
