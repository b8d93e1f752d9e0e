#!/bin/sh
# The official openai npm package driving meshlm serve (tests/server/openai.mjs). Installs
# nothing: it needs node and a node_modules directory holding openai (CMake's
# MESHLM_NODE_MODULES, or the environment's), and skips without them.
# usage: server_openai.sh MESHLM [NODE_MODULES]
meshlm=$1
modules=${2:-$MESHLM_NODE_MODULES}
command -v node >/dev/null 2>&1 || { echo "SKIP: no node"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
if [ -z "$modules" ] || [ ! -f "$modules/openai/package.json" ]; then
    echo "SKIP: no openai package (configure with -DMESHLM_NODE_MODULES=DIR/node_modules after npm install openai in DIR)"
    exit 77
fi
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/server_lib.sh"
"$meshlm" synth --arch llama --preset tiny --type Q8_0 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
start_server "$work/log" -m "$work/tiny.gguf" --alias tiny-node --api-key sekrit -t 1 || exit 1
node "$(dirname "$0")/server/openai.mjs" "$modules" "http://127.0.0.1:$port/v1" tiny-node
rc=$?
stop_server || { echo "FAIL: the server did not exit 0 on SIGTERM"; rc=1; }
pid=""
exit $rc
