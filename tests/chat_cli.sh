#!/bin/sh
# `meshlm chat` and the llama.cpp conventions of `run`, as a user drives them: turns from
# standard input that reuse the conversation's KV, no control-token text in the output,
# /clear, Ctrl-C stopping a reply, --version, --temp <= 0, -f -, -e, stop strings,
# --ignore-eos, and --batch printing each line as soon as it is done.
# usage: chat_cli.sh MESHLM
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
# Waits (at most 60 s) until file $1 holds some text: the reply is streaming, so the
# program has its Ctrl-C handler (a background job starts with SIGINT ignored until then).
wait_output() {
    i=0
    while [ ! -s "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
}

"$meshlm" synth --arch llama --preset tiny --type F32 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
"$meshlm" synth --arch qwen2 --preset tiny --type F32 -o "$work/qwen.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
m="$work/tiny.gguf"

# Three turns through a pipe: each line a turn, the later turns reuse what came before.
printf 'Hello there\nHow are you?\n\nTell me more.\n' |
    "$meshlm" chat -m "$m" -n 8 --temp 0 -sys "Be brief." >"$work/out" 2>"$work/err"
check '[ $? -eq 0 ]' "chat exited non-zero: $(cat "$work/err")"
check '[ "$(wc -l <"$work/out")" -eq 3 ]' "chat printed $(wc -l <"$work/out") reply lines, want 3"
check '! grep -q "<|" "$work/out"' "chat output holds control-token text: $(cat "$work/out")"
for t in 2 3; do
    line=$(grep "turn $t:" "$work/err")
    total=$(echo "$line" | sed -n 's/.*turn [0-9]*: \([0-9]*\) prompt tokens, \([0-9]*\) reused, \([0-9]*\) evaluated.*/\1 \2 \3/p')
    set -- $total
    n_prompt=$1 n_reused=$2 n_eval=$3
    check '[ -n "$total" ] && [ "$n_reused" -gt 20 ] && [ $((n_reused + n_eval)) -eq "$n_prompt" ]' \
        "turn $t did not reuse the prefix: '$line'"
done

# /clear: the next turn is the first again, so all but its last token is reused.
printf 'Hi\n/clear\nHi\n/exit\nnever read\n' | "$meshlm" chat -m "$m" -n 4 --temp 0 >"$work/out" 2>"$work/err"
first=$(grep "turn 1:" "$work/err" | sed 's/.*turn 1: \([0-9]*\) prompt.*/\1/')
line=$(grep "turn 2:" "$work/err")
check 'echo "$line" | grep -q ": $first prompt tokens, $((first - 1)) reused, 1 evaluated"' "/clear: '$line' (turn 1: $first)"
check '[ "$(wc -l <"$work/out")" -eq 2 ] && ! grep -q "turn 3" "$work/err"' "/exit did not end the chat"

# run -cnv is chat; -p is the first turn; --special shows control tokens.
echo "Again" | "$meshlm" run -cnv -m "$work/qwen.gguf" -p "First" -n 4 --temp 0 >"$work/out" 2>"$work/err"
check '[ $? -eq 0 ] && grep -q "turn 2:" "$work/err"' "run -cnv: $(cat "$work/err")"

# A template that raises is reported, and the chat goes on with the next line.
printf '{{ raise_exception("no chat here") }}' >"$work/raise.jinja"
echo "Hi" | "$meshlm" chat -m "$m" --chat-template "$work/raise.jinja" -n 2 >"$work/out" 2>"$work/err"
check 'grep -q "no chat here" "$work/err"' "a raising template was not reported: $(cat "$work/err")"
printf '{%% for m in messages %%}' >"$work/broken.jinja"
"$meshlm" chat -m "$m" --chat-template "$work/broken.jinja" </dev/null >/dev/null 2>"$work/err"
check '[ $? -ne 0 ] && grep -q "line 1" "$work/err"' "a broken template: $(cat "$work/err")"

# Ctrl-C stops the reply, not the chat: the next line is answered.
"$meshlm" synth --arch llama --n-embd 512 --n-layer 8 --n-head 8 --n-head-kv 8 --n-ff 1536 --n-vocab 512 \
    --n-ctx 8192 --type F32 -o "$work/slow.gguf" 2>/dev/null
mkfifo "$work/in"
# (-n 300 takes this model seconds: the reply is still going when its first text shows.)
"$meshlm" chat -m "$work/slow.gguf" --ignore-eos --temp 0 -n 300 <"$work/in" >"$work/out" 2>"$work/err" &
pid=$!
exec 3>"$work/in"
echo "Go on forever" >&3
wait_output "$work/out"
kill -INT $pid
sleep 0.5
echo "Short" >&3
exec 3>&-
wait $pid
rc=$?
check '[ $rc -eq 0 ] && grep -q "reply stopped" "$work/err" && grep -q "turn 2:" "$work/err"' \
    "Ctrl-C in chat: exit $rc, $(tail -3 "$work/err")"

# run: --version, --temp -1 is greedy, -f - reads stdin, -e, stop strings, --ignore-eos.
check '"$meshlm" --version | grep -q "^meshlm [0-9]*\.[0-9]*\.[0-9]*$"' "meshlm --version"
check '"$meshlm" run --version | grep -q "^meshlm "' "meshlm run --version"
greedy=$("$meshlm" run -m "$m" -p "Once upon a time" -n 24 --temp 0 2>/dev/null)
check '[ -n "$greedy" ] && [ "$("$meshlm" run -m "$m" -p "Once upon a time" -n 24 --temp -1 2>/dev/null)" = "$greedy" ]' \
    "--temp -1 is not greedy"
check '[ "$(printf "Once upon a time" | "$meshlm" run -m "$m" -f - -n 24 --temp 0 2>/dev/null)" = "$greedy" ]' "-f -"
esc=$("$meshlm" run -m "$m" -e -p 'line one\nline\ttwo' -n 8 --temp 0 2>/dev/null)
raw=$("$meshlm" run -m "$m" -p "$(printf 'line one\nline\ttwo')" -n 8 --temp 0 2>/dev/null)
check '[ -n "$esc" ] && [ "$esc" = "$raw" ]' "-e: '$esc' vs '$raw'"
# The stop string: three characters from the middle of the greedy text.
stop=$(printf '%s' "$greedy" | cut -c 12-14)
want=$(printf '%s' "$greedy" | awk -v s="$stop" '{ i = index($0, s); print substr($0, 1, i - 1); exit }')
got=$("$meshlm" run -m "$m" -p "Once upon a time" -n 24 --temp 0 --stop "$stop" 2>/dev/null)
check '[ "$got" = "$want" ]' "--stop '$stop': '$got', want '$want'"
got=$("$meshlm" run -m "$m" -p "Once upon a time" -n 24 --temp 0 -r "$stop" -r "zzzz" 2>/dev/null)
check '[ "$got" = "$want" ]' "-r '$stop': '$got', want '$want'"
"$meshlm" run -m "$m" -p "Once upon a time" -n 40 --temp 0 --ignore-eos >/dev/null 2>"$work/err"
check 'grep -q "generation 40 tokens" "$work/err"' "--ignore-eos: $(tail -1 "$work/err")"

# Ctrl-C during run ends the line and prints the timings.
"$meshlm" run -m "$work/slow.gguf" -c 4096 -p "Go" -n -1 --ignore-eos >"$work/out" 2>"$work/err" &
pid=$!
wait_output "$work/out"
sleep 0.5
kill -INT $pid
wait $pid
rc=$?
check '[ $rc -eq 130 ] && grep -q "generation [0-9]* tokens" "$work/err" && [ "$(tail -c 1 "$work/out" | od -An -c | tr -d " ")" = "\\n" ]' \
    "Ctrl-C in run: exit $rc, $(tail -1 "$work/err")"

# --batch with a stop string: the line that meets it ends there, with finish_reason stop.
printf 'Once upon a time\nThe mesh of devices\n' >"$work/p.txt"
"$meshlm" run -m "$m" -f "$work/p.txt" --batch 2 -n 24 --temp 0 --stop "$stop" >"$work/out" 2>"$work/err"
check '[ $? -eq 0 ] && [ "$(wc -l <"$work/out")" -eq 2 ]' "--batch --stop: $(cat "$work/err")"
check 'head -1 "$work/out" | grep -q "\"finish_reason\": \"stop\""' "--batch --stop: $(head -1 "$work/out")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
