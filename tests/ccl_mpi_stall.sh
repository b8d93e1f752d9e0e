#!/bin/sh
# A rank that stops answering in the middle of a run (alive, but in no collective): the
# others' collectives must give up at their deadline (2 s here) with an error naming their
# rank and host, and the whole job must end non-zero within 10 s.
# usage: ccl_mpi_stall.sh MPIEXEC TEST_CCL_MPI
mpiexec=$1
prog=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
timeout -k 5 30 "$mpiexec" -n 4 --oversubscribe "$prog" --stall >"$out" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))
echo "mpiexec exited with $rc after ${elapsed}s"
grep "had no answer" "$out" | head -3
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$elapsed" -gt 10 ]; then
    echo "FAIL: expected a non-zero exit of the whole job within 10 s"
    exit 1
fi
if ! grep -q "rank [0-9]* on host .* had no answer from its peers" "$out"; then
    echo "FAIL: no rank reported the peers that stopped answering"
    cat "$out"
    exit 1
fi
echo "ok: the job ended when a rank stopped answering"
