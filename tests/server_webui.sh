#!/bin/sh
# The chat page at GET / in a headless browser (tests/server/webui.mjs, puppeteer-core). Installs
# nothing: it needs node, Chromium (MESHLM_CHROMIUM, else /usr/bin/chromium and the like) and a
# node_modules directory holding puppeteer-core (CMake's MESHLM_NODE_MODULES, or the
# environment's), and skips without them. Screenshots go to OUT_DIR.
# usage: server_webui.sh MESHLM [NODE_MODULES] [OUT_DIR]
meshlm=$1
modules=${2:-$MESHLM_NODE_MODULES}
out=${3:-$(pwd)/webui-screenshots}
command -v node >/dev/null 2>&1 || { echo "SKIP: no node"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
if [ -z "$modules" ] || [ ! -f "$modules/puppeteer-core/package.json" ]; then
    echo "SKIP: no puppeteer-core package (configure with -DMESHLM_NODE_MODULES=DIR/node_modules after npm install puppeteer-core in DIR)"
    exit 77
fi
browser=${MESHLM_CHROMIUM:-}
if [ -z "$browser" ]; then
    for b in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome /usr/bin/google-chrome-stable; do
        [ -x "$b" ] && { browser=$b; break; }
    done
fi
if [ -z "$browser" ] || [ ! -x "$browser" ]; then
    echo "SKIP: no Chromium (install chromium, or set MESHLM_CHROMIUM to a Chrome or Chromium binary)"
    exit 77
fi
work=$(mktemp -d)
pid=""
lpid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; [ -n "$lpid" ] && kill -9 $lpid 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/server_lib.sh"
# Slow enough (about 200 tokens/s on one thread) for a reply to be stopped midway.
"$meshlm" synth --arch llama --n-embd 512 --n-layer 8 --n-head 8 --n-head-kv 8 --n-ff 1536 --n-vocab 512 \
    --n-ctx 8192 --type F32 -o "$work/slow.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }

# A server held loading: its model is a named pipe (opening it waits for a writer); the page
# test then writes no model into it, and the server exits.
mkfifo "$work/loading.gguf"
lport=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
"$meshlm" serve -m "$work/loading.gguf" --port "$lport" >"$work/lload" 2>&1 &
lpid=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$lport/health" || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done

# One sequence at a time and no queue, so a second client finds the server full.
start_server "$work/log" -m "$work/slow.gguf" --alias webui-model --api-key sekrit -c 4096 --parallel 1 \
    --max-queue 0 --ignore-eos -t 1 || exit 1
node "$(dirname "$0")/server/webui.mjs" "$modules" "$browser" "http://127.0.0.1:$port" sekrit \
    "http://127.0.0.1:$lport" "$work/loading.gguf" "$out"
rc=$?
if kill -0 "$lpid" 2>/dev/null; then
    echo "FAIL: the loading server is still running"
    rc=1
fi
wait "$lpid" 2>/dev/null
lpid=""
stop_server || { echo "FAIL: the server did not exit 0 on SIGTERM"; rc=1; }
pid=""
exit $rc
