#!/bin/sh
# Regenerates tests/fixtures/llamacpp.txt, llama.cpp's outputs on a few tiny synthetic models,
# which test_llamacpp_fixture checks meshlm against. llama.cpp is needed only here:
#
#   sh tests/llamacpp_fixture.sh MESHLM_BIN LLAMA_SERVER_BIN > tests/fixtures/llamacpp.txt
#
# Each model is made by `meshlm synth` (deterministic: the same options give the same bytes on
# any machine), served by llama-server on one thread with an f32 KV cache, and asked for three
# prompts of fixed token ids (6, 40 and 90 of them; the window is 16) with greedy decoding: the
# 8 ids it generates and the top 3 (id, probability) of the first step. llama-server leaves out
# the probabilities of tokens that end inside a UTF-8 character (lone bytes of the synthetic
# byte-level vocabulary), so a prompt is shifted until every generated token has them. Lines:
#   model ARCH N_LAYER WINDOW ROPE_THETA SEED [N_CTX_ORIG [SWA_PATTERN [N_EXPERT N_USED [TYPE]]]]
#                              (synth --preset tiny --type F32 with these; N_CTX_ORIG, phi3's
#                              original context, when not 0: 64 makes the 512-position context
#                              take the long LongRoPE factors; SWA_PATTERN, gemma3's, when not
#                              0: -1 windows every layer; N_EXPERT experts, N_USED per token,
#                              when not 0: a mixture of experts, whose width for llama is the
#                              feed-forward's; TYPE, every matrix's type, F32 unless given)
#   prompt N ID...
#   greedy N ID...
#   top3 ID P ID P ID P
set -eu
MESHLM=$1
SERVER=$2
PORT=${PORT:-18977}
DIR=$(mktemp -d)
PID=
trap 'if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi; rm -rf "$DIR"' EXIT

echo "# llama.cpp's greedy ids and first-step top-3 probabilities; see tests/llamacpp_fixture.sh"
for spec in "llama 2 16 10000 21" "qwen3 2 16 1000000 22" "gemma2 2 16 10000 23" "gemma3 7 16 1000000 24" \
    "phi3 2 16 10000 25 64" "phi3 2 16 10000 26" "smollm3 4 16 5000000 27" "gemma3 3 16 1000000 28 0 -1" \
    "qwen3moe 2 16 1000000 29" "qwen3moe 3 16 1000000 30 0 0 16 4" "llama 2 16 10000 31 0 0 8 2" \
    "qwen2moe 2 16 1000000 32" "llama 2 16 10000 33 0 0 0 0 MXFP4" "qwen3moe 2 16 1000000 34 0 0 8 2 MXFP4" \
    "gpt-oss 2 16 150000 35" "gpt-oss 3 16 150000 36 0 0 8 2 MXFP4"; do
    set -- $spec
    f=$DIR/$1.gguf
    extra=
    if [ $# -gt 5 ] && [ "$6" != 0 ]; then extra="--n-ctx-orig $6"; fi
    if [ $# -gt 6 ] && [ "$7" = -1 ]; then extra="$extra --swa-pattern all"; fi
    if [ $# -gt 6 ] && [ "$7" -gt 0 ]; then extra="$extra --swa-pattern $7"; fi
    if [ $# -gt 8 ] && [ "$8" != 0 ]; then extra="$extra --n-expert $8 --n-expert-used $9"; fi
    type=F32
    if [ $# -gt 9 ]; then type=${10}; fi
    "$MESHLM" synth --arch "$1" --preset tiny --n-layer "$2" --sliding-window "$3" --rope-theta "$4" \
        --type "$type" --seed "$5" $extra -o "$f" 2>/dev/null
    "$SERVER" -m "$f" --port "$PORT" -t 1 -c 512 -ctk f32 -ctv f32 >"$DIR/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -sf "localhost:$PORT/health" >/dev/null 2>&1 && break
        sleep 0.2
    done
    echo "model $spec"
    PORT=$PORT python3 -c '
import json, math, os, sys, urllib.request
url = "http://localhost:%s/completion" % os.environ["PORT"]
for k, n in enumerate((6, 40, 90)):
    for shift in range(50):
        ids = [(i * 131 + k * 17 + shift * 53 + 7) % 1000 for i in range(n)]
        req = {"prompt": ids, "n_predict": 8, "temperature": 0, "top_k": 1, "n_probs": 3,
               "return_tokens": True, "cache_prompt": False, "ignore_eos": True}
        d = json.load(urllib.request.urlopen(url, json.dumps(req).encode()))
        probs = d.get("completion_probabilities", [])
        if len(d["tokens"]) == 8 and len(probs) == 8:
            break
    else:
        sys.exit("no prompt of %d tokens gave every probability" % n)
    print("prompt", n, " ".join(map(str, ids)))
    print("greedy", 8, " ".join(map(str, d["tokens"])))
    print("top3", " ".join("%d %.6f" % (t["id"], math.exp(t["logprob"])) for t in probs[0]["top_logprobs"]))
'
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
done
