#!/bin/sh
# `meshlm run` over MPI ranks gives the same greedy text as the same mesh on threads, with
# one device per rank (R*C ranks) or a row of device threads per rank (R ranks), alone and
# with --batch (every prompt's text); and a rank killed in the middle of generation ends the
# whole job, non-zero, within seconds.
# usage: run_mpi.sh MPIEXEC MESHLM SHARED_DIR
mpiexec=$1
meshlm=$2
shared=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
passed=0

"$meshlm" synth --arch llama --preset tiny --type Q8_0 -o "$work/tiny.gguf" 2>/dev/null || { echo "synth failed"; exit 1; }
models="$work/tiny.gguf"
[ -r "$shared/models/stories260K.gguf" ] && models="$models $shared/models/stories260K.gguf"

for model in $models; do
    for case in "2 1x2" "4 1x4" "4 2x2" "2 2x2" "2 2x3"; do
        set -- $case
        threads=$("$meshlm" run -m "$model" -p "Once upon a time" -n 24 --temp 0 --mesh "$2" 2>/dev/null)
        ranks=$(timeout -k 5 120 "$mpiexec" -n "$1" --oversubscribe --bind-to none "$meshlm" run --transport mpi --mesh "$2" \
            -m "$model" -p "Once upon a time" -n 24 --temp 0 2>/dev/null)
        if [ -n "$threads" ] && [ "$threads" = "$ranks" ]; then
            passed=$((passed + 1))
        else
            echo "FAIL: $(basename "$model") mesh $2 on $1 ranks: '$ranks' vs threads '$threads'"
            fail=$((fail + 1))
        fi
    done
done

# Mixtures of experts over 2 ranks: experts split in width, and whole experts per rank
# (expert_parallel), both the one-process text; gpt-oss adds expert biases (added once
# over the ranks) and MXFP4 experts.
"$meshlm" synth --arch qwen3moe --preset tiny --n-expert 16 --n-expert-used 4 --type Q8_0 -o "$work/moe.gguf" \
    2>/dev/null || { echo "synth failed"; exit 1; }
"$meshlm" synth --arch gpt-oss --preset tiny --type Q8_0 --expert-type MXFP4 -o "$work/gpt-oss.gguf" \
    2>/dev/null || { echo "synth failed"; exit 1; }
for moe in moe gpt-oss; do
    one=$("$meshlm" run -m "$work/$moe.gguf" -p "Once upon a time" -n 24 --temp 0 --special 2>/dev/null)
    for split in width whole; do
        if [ $split = whole ]; then set -- --expert-parallel; else set -- --opt-set expert_parallel=off; fi
        ranks=$(timeout -k 5 120 "$mpiexec" -n 2 --oversubscribe --bind-to none "$meshlm" run --transport mpi \
            --mesh 1x2 "$@" -m "$work/$moe.gguf" -p "Once upon a time" -n 24 --temp 0 --special 2>/dev/null)
        if [ -n "$one" ] && [ "$one" = "$ranks" ]; then
            passed=$((passed + 1))
        else
            echo "FAIL: $moe $* on 2 ranks: '$ranks' vs one process '$one'"
            fail=$((fail + 1))
        fi
    done
done

# --batch: every rank runs the same scheduler; rank 0 prints one JSON line per prompt.
printf 'Once upon a time\nThe mesh of devices\nA longer prompt, with a few more tokens in it than the others\n' > "$work/p.txt"
texts() { grep -o '"text": "[^"]*"'; }
for case in "2 1x2" "4 2x2" "2 2x2"; do
    set -- $case
    threads=$("$meshlm" run -m "$work/tiny.gguf" -f "$work/p.txt" --batch 3 -n 12 --temp 0 --mesh "$2" 2>/dev/null | texts)
    ranks=$(timeout -k 5 120 "$mpiexec" -n "$1" --oversubscribe --bind-to none "$meshlm" run --transport mpi --mesh "$2" \
        -m "$work/tiny.gguf" -f "$work/p.txt" --batch 3 -n 12 --temp 0 2>/dev/null | texts)
    if [ -n "$threads" ] && [ "$threads" = "$ranks" ]; then
        passed=$((passed + 1))
    else
        echo "FAIL: --batch mesh $2 on $1 ranks: '$ranks' vs threads '$threads'"
        fail=$((fail + 1))
    fi
done

# Under mpirun with no --transport, meshlm uses MPI (one device per rank) instead of every
# rank running its own copy: one text, the 1x2 mesh's.
threads=$("$meshlm" run -m "$work/tiny.gguf" -p "Once upon a time" -n 24 --temp 0 --mesh 1x2 2>/dev/null)
ranks=$(timeout -k 5 120 "$mpiexec" -n 2 --oversubscribe --bind-to none "$meshlm" run -m "$work/tiny.gguf" \
    -p "Once upon a time" -n 24 --temp 0 2>/dev/null)
if [ -n "$threads" ] && [ "$threads" = "$ranks" ]; then
    passed=$((passed + 1))
else
    echo "FAIL: mpirun without --transport: '$ranks' vs threads 1x2 '$threads'"
    fail=$((fail + 1))
fi

# chat over MPI: rank 0 reads the turns, every rank follows, the replies are the threads mesh's.
printf 'Hello there\nHow are you?\n' > "$work/turns.txt"
threads=$("$meshlm" chat -m "$work/tiny.gguf" -n 8 --temp 0 --mesh 2x1 < "$work/turns.txt" 2>/dev/null)
ranks=$(timeout -k 5 120 "$mpiexec" -n 2 --oversubscribe --bind-to none "$meshlm" chat --transport mpi --mesh 2x1 \
    -m "$work/tiny.gguf" -n 8 --temp 0 < "$work/turns.txt" 2>/dev/null)
if [ -n "$threads" ] && [ "$threads" = "$ranks" ]; then
    passed=$((passed + 1))
else
    echo "FAIL: chat on 2 ranks: '$ranks' vs threads '$threads'"
    fail=$((fail + 1))
fi

# Kill rank 1 while the ranks work through a long prompt; mpiexec must end the job within
# 10 s. (A long context and prompt keep the job busy well past the kill, whatever it samples.)
"$meshlm" synth --arch llama --preset tiny --n-ctx 16384 --type F32 -o "$work/long.gguf" 2>/dev/null || exit 1
i=0
while [ $i -lt 700 ]; do printf 'once upon a time there was a story ' ; i=$((i + 1)); done > "$work/long.txt"
timeout -k 5 60 "$mpiexec" -n 2 --oversubscribe "$meshlm" run --transport mpi --mesh 1x2 -m "$work/long.gguf" \
    -f "$work/long.txt" -n 4 -c 16384 --temp 0 >/dev/null 2>&1 &
job=$!
sleep 2
victim=$(pgrep -f "meshlm run --transport mpi --mesh 1x2 -m $work/long.gguf" | sort -n | tail -n 1)
start=$(date +%s)
[ -n "$victim" ] && kill -9 "$victim"
wait "$job"
rc=$?
elapsed=$(($(date +%s) - start))
if [ -z "$victim" ] || [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$elapsed" -gt 10 ]; then
    echo "FAIL: killed rank ${victim:-none}: mpiexec exited $rc after ${elapsed}s"
    fail=$((fail + 1))
else
    passed=$((passed + 1))
fi
echo "$passed passed, $fail failed"
[ "$fail" -eq 0 ]
