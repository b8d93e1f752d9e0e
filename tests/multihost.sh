#!/bin/sh
# Several hosts on one machine: network namespaces joined by veth links to a bridge, each
# with an address of its own, and OpenMPI's rsh launcher starting ranks in them through
# `ip netns exec`, the TCP transport forced between them (no shared memory) and limited to
# the rig's subnet. mpirun runs on a head node of its own, as on a cluster's login node,
# whose TCP gives up on an unanswered peer after a few seconds (net.ipv4.tcp_retries2=2,
# as the README advises). Checks that runs spread over the hosts give one process's text,
# and that a fault in the middle of a generation (a host's link down, or slowed to a crawl,
# or its rank killed) ends every rank within 10 s, those that notice it naming their rank
# and host, and mpirun soon after, instead of a hang.
# Needs root and the ip tool; skips (exit 77) when namespaces cannot be made.
# usage: multihost.sh MPIEXEC MESHLM
set -u
mpiexec=$1
meshlm=$2
id=$$
hosts="mlh${id}a mlh${id}b"
head=mlh${id}h
bridge=mlbr$id
work=$(mktemp -d)
cleanup() {
    pkill -9 -f "$work/hostfile" 2>/dev/null
    for h in $hosts $head; do ip netns del "$h" 2>/dev/null; done
    ip link del "$bridge" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

skip() {
    echo "skip: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
command -v ip >/dev/null || skip "no ip tool (iproute2)"
command -v pgrep >/dev/null && command -v unshare >/dev/null || skip "no pgrep (procps) or unshare (util-linux)"
ip link add "$bridge" type bridge 2>/dev/null || skip "cannot make a bridge here"
ip addr add 10.78.0.1/24 dev "$bridge" && ip link set "$bridge" up || skip "cannot set up the bridge"
n=1
for h in $hosts $head; do
    n=$((n + 1))
    ip netns add "$h" 2>/dev/null || skip "cannot make network namespaces here"
    ip link add "v$id$n" type veth peer name eth0 netns "$h" || skip "cannot make veth links"
    ip link set "v$id$n" master "$bridge" && ip link set "v$id$n" up
    ip netns exec "$h" ip addr add "10.78.0.$n/24" dev eth0
    ip netns exec "$h" ip link set eth0 up
    ip netns exec "$h" ip link set lo up
done

# The launcher's "ssh": the host is a namespace, entered with its own hostname.
cat >"$work/agent" <<EOF
#!/bin/sh
h=\$1
shift
exec ip netns exec "\$h" unshare --uts sh -c "hostname \$h; \$*"
EOF
chmod +x "$work/agent"
for h in $hosts; do echo "$h slots=4"; done >"$work/hostfile"
# mpirun on the head node, over the rig: ranks dealt to the hosts in turn, TCP only, on the
# rig's subnet. After a link fault mpirun waits for the lost host's daemon until TCP gives
# up on it: 15 retries, many minutes, by default.
gives_up=""
ip netns exec "$head" sysctl -qw net.ipv4.tcp_retries2=2 2>/dev/null && gives_up=1
[ -n "$gives_up" ] || echo "note: cannot set the head node's tcp_retries2: mpirun's own exit is not timed"
cat >"$work/mpi" <<EOF
#!/bin/sh
exec ip netns exec "$head" "$mpiexec" --hostfile "$work/hostfile" --map-by node --bind-to none --mca routed direct \\
    --mca plm_rsh_agent "$work/agent" --mca btl tcp,self --mca btl_tcp_if_include 10.78.0.0/24 \\
    --mca oob_tcp_if_include 10.78.0.0/24 "\$@"
EOF
chmod +x "$work/mpi"
mpi() { timeout -k 5 120 "$work/mpi" "$@"; }
# The meshlm processes (not the launcher) whose command line names file $1.
ranks_of() {
    for p in $(pgrep -f "$1"); do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = meshlm ] && echo "$p"
    done
}
fail=0

# Texts across hosts, against one process.
"$meshlm" synth --preset tiny --type Q8_0 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
one=$("$meshlm" run -m "$work/tiny.gguf" -p "Once upon a time" -n 24 --temp 0 2>/dev/null)
for case in "2 1x2" "4 2x2" "8 2x4"; do
    set -- $case
    got=$(mpi -np "$1" "$meshlm" run --transport mpi --mesh "$2" -m "$work/tiny.gguf" -p "Once upon a time" -n 24 \
        --temp 0 2>"$work/err" </dev/null)
    if [ -n "$one" ] && [ "$got" = "$one" ]; then
        echo "ok: run, mesh $2 over 2 hosts ($1 ranks), one process's text"
    else
        echo "FAIL: run, mesh $2 over 2 hosts: '$got' vs '$one'"
        tail -5 "$work/err"
        fail=1
    fi
done
printf 'Once upon a time\nThe mesh of devices\nA longer prompt, with a few more tokens in it\n' >"$work/p.txt"
texts() { grep -o '"text": "[^"]*"'; }
want=$("$meshlm" run -m "$work/tiny.gguf" -f "$work/p.txt" --batch 3 -n 12 --temp 0 2>/dev/null | texts)
for case in "2 1x2" "4 2x2" "8 2x4"; do
    set -- $case
    got=$(mpi -np "$1" "$meshlm" run --transport mpi --mesh "$2" -m "$work/tiny.gguf" -f "$work/p.txt" --batch 3 \
        -n 12 --temp 0 2>/dev/null </dev/null | texts)
    if [ -n "$want" ] && [ "$got" = "$want" ]; then
        echo "ok: run --batch, mesh $2 over 2 hosts ($1 ranks), one process's texts"
    else
        echo "FAIL: run --batch, mesh $2 over 2 hosts: '$got' vs '$want'"
        fail=1
    fi
done

# Faults in the middle of a generation over 1x2, one rank per host, with a 2 s deadline on
# collectives: every rank must have exited within 10 s of the fault, and for the faults
# nothing else notices (a link down or slowed to a crawl), a rank on the first host must
# have named itself and its host. Each case prints its seconds to exit.
"$meshlm" synth --arch llama --n-embd 1024 --n-layer 8 --n-head 8 --n-head-kv 8 --n-ff 4096 --n-vocab 32000 \
    --n-ctx 8192 --type Q8_0 -o "$work/mid.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
first=$(echo $hosts | cut -d' ' -f1)
second=$(echo $hosts | cut -d' ' -f2)

# The meshlm ranks running in namespace $1 whose command line names file $2.
ranks_on() {
    for p in $(ip netns pids "$1"); do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = meshlm ] && grep -q "$2" /proc/"$p"/cmdline 2>/dev/null && echo "$p"
    done
}

# fault NAME NAMED ACTION UNDO [FIRST]: ACTION (a shell command) strikes 3 s into the
# generation; NAMED = 1 when a rank must report it; UNDO puts the rig back. Every rank must
# exit, or with FIRST the first host's (the second host's is the fault itself: stopped).
fault() {
    # Each rank's exit code goes to a file both hosts see (they share the file system).
    : >"$work/codes"
    mpi -np 2 sh -c "$meshlm run --transport mpi --mesh 1x2 -t 1 --ccl-timeout 2 -m $work/mid.gguf -c 4096 \
        -p 'Once upon a time' -n 4000 --ignore-eos --temp 0 >/dev/null; \
        echo rank \$OMPI_COMM_WORLD_RANK exit \$? >>$work/codes" 2>"$work/fault" </dev/null &
    launcher=$!
    sleep 3
    [ -n "$(ranks_of "$work/mid.gguf")" ] || echo "note: $1: the generation ended before the fault"
    at=$(date +%s)
    sh -c "$3"
    exited=-1
    for t in $(seq 1 20); do
        sleep 0.5
        left=$(if [ -n "${5:-}" ]; then ranks_on "$first" "$work/mid.gguf"; else ranks_of "$work/mid.gguf"; fi)
        if [ -z "$left" ]; then
            exited=$(($(date +%s) - at))
            break
        fi
    done
    # mpirun ends once its TCP gives up on the lost host's daemon. The wait stays inline: in
    # a $(...) subshell this shell could not reap the launcher, and kill -0 sees a zombie.
    ended=-1
    for t in $(seq 1 30); do
        if ! kill -0 "$launcher" 2>/dev/null; then
            ended=$(($(date +%s) - at))
            break
        fi
        sleep 0.5
    done
    kill -9 "$launcher" 2>/dev/null
    pkill -9 -f "$work/hostfile" 2>/dev/null
    wait "$launcher" 2>/dev/null
    for p in $(ranks_of "$work/mid.gguf"); do kill -9 "$p"; done
    sh -c "$4"
    named=$(grep -o "rank [0-9] on host $first: [^(]*" "$work/fault" | head -1)
    if [ "$exited" -ge 0 ] && { [ "$2" = 0 ] || [ -n "$named" ]; } && { [ -z "$gives_up" ] || [ "$ended" -ge 0 ]; }; then
        codes=$(sort -u "$work/codes" | sed 's/ exit /: exit /' | tr '\n' ',')
        echo "ok: $1: every ${5:+surviving }rank exited within $exited s (${codes%,}; mpirun ends the others)," \
            "mpirun within $ended s${named:+; $named}"
    else
        echo "FAIL: $1: ranks still running after 10 s ($exited), mpirun after 15 s ($ended), or no rank named itself"
        tail -5 "$work/fault"
        fail=1
    fi
}
link=v${id}3
fault "link of $second down" 1 "ip link set $link down" "ip link set $link up"
# Slowed with netem's delay where the kernel has it, else with a token bucket of 8 kbit/s
# (a 4 KiB message then takes 4 s).
slow="netem delay 10000ms"
ip netns exec "$second" tc qdisc add dev eth0 root $slow 2>/dev/null || slow="tbf rate 8kbit burst 1600 latency 60s"
ip netns exec "$second" tc qdisc del dev eth0 root 2>/dev/null
if command -v tc >/dev/null && ip netns exec "$second" tc qdisc add dev eth0 root $slow 2>/dev/null; then
    ip netns exec "$second" tc qdisc del dev eth0 root
    fault "link of $second slowed to a crawl ($slow)" 1 "ip netns exec $second tc qdisc add dev eth0 root $slow" \
        "ip netns exec $second tc qdisc del dev eth0 root"
else
    echo "note: no tc qdisc to slow a link with: that case is left out"
fi
# serve across the hosts (1x2, 2x2, 2x4): it answers as one process does; then, on 1x2,
# the second host's link goes down, and rank 0 must answer 503 (never hang a client) and
# every rank exit within 10 s.
port=$((20000 + id % 20000))
url=http://10.78.0.2:$port/v1/completions
req='{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}'
serve_log=$work/serve.log
text_of() { grep -o '"text": *"[^"]*"' | head -1; }
wait_ready() {
    for t in $(seq 1 150); do
        grep -q "ready:" "$1" && return 0
        sleep 0.2
    done
    return 1
}
# The same request to one process, on the root namespace's loopback.
"$meshlm" serve -t 1 --port $((port + 1)) -m "$work/tiny.gguf" >"$work/one.log" 2>&1 </dev/null &
single=$!
wait_ready "$work/one.log"
one=$(curl -s -m 20 "http://127.0.0.1:$((port + 1))/v1/completions" -H 'Content-Type: application/json' -d "$req" |
    text_of)
kill "$single"
wait "$single" 2>/dev/null
for case in "8 2x4" "4 2x2" "2 1x2"; do
    set -- $case
    mpi -np "$1" "$meshlm" serve --transport mpi --mesh "$2" -t 1 --ccl-timeout 2 --host 0.0.0.0 --port "$port" \
        -m "$work/tiny.gguf" >"$serve_log" 2>&1 </dev/null &
    launcher=$!
    wait_ready "$serve_log"
    got=$(curl -s -m 20 "$url" -H 'Content-Type: application/json' -d "$req" | text_of)
    if [ -n "$got" ] && [ "$got" = "$one" ]; then
        echo "ok: serve, mesh $2 over 2 hosts ($1 ranks), one process's text"
    else
        echo "FAIL: serve, mesh $2 over 2 hosts: '$got' vs '$one'"
        tail -5 "$serve_log"
        fail=1
    fi
    [ "$2" = 1x2 ] && break
    # SIGTERM to rank 0 (its pid is in the log) ends the job gracefully.
    kill "$(grep -o 'rank 0 is pid [0-9]*' "$serve_log" | grep -o '[0-9]*$')" 2>/dev/null
    wait "$launcher" 2>/dev/null
done
at=$(date +%s)
ip link set "$link" down
codes=""
exited=-1
for t in $(seq 1 40); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$url" -H 'Content-Type: application/json' -d "$req")
    codes="$codes $code"
    if [ -z "$(ranks_of "$work/tiny.gguf")" ]; then
        exited=$(($(date +%s) - at))
        break
    fi
    [ $(($(date +%s) - at)) -gt 10 ] && break
    sleep 0.25
done
ended=-1
for t in $(seq 1 30); do
    if ! kill -0 "$launcher" 2>/dev/null; then
        ended=$(($(date +%s) - at))
        break
    fi
    sleep 0.5
done
kill -9 "$launcher" 2>/dev/null
pkill -9 -f "$work/hostfile" 2>/dev/null
wait "$launcher" 2>/dev/null
for p in $(ranks_of "$work/tiny.gguf"); do kill -9 "$p"; done
ip link set "$link" up
if [ "$exited" -ge 0 ] && echo "$codes" | grep -q 503 && ! echo "$codes" | grep -q " 200" &&
    { [ -z "$gives_up" ] || [ "$ended" -ge 0 ]; }; then
    echo "ok: serve, link of $second down: answered$codes, rank 0 exited within $exited s, mpirun within $ended s"
else
    echo "FAIL: serve, link of $second down: answered$codes; ranks exited after ${exited} s (-1: still running)"
    tail -5 "$serve_log"
    fail=1
fi
fault "the rank on $second stops answering (SIGSTOP)" 1 \
    "for p in \$(ip netns pids $second); do [ \"\$(cat /proc/\$p/comm)\" = meshlm ] && kill -STOP \$p; done" "true" first
fault "the rank on $second killed" 0 \
    "for p in \$(ip netns pids $second); do [ \"\$(cat /proc/\$p/comm)\" = meshlm ] && kill -9 \$p; done" "true"
exit $fail
