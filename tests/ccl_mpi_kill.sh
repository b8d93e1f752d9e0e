#!/bin/sh
# A rank killed in the middle of a collective: mpiexec must end the whole job, non-zero,
# within seconds, while the other ranks are blocked waiting for the dead one.
# (mpiexec reports the dead rank's signal, e.g. 137; a timeout shows as a long elapsed time.)
# usage: ccl_mpi_kill.sh MPIEXEC TEST_CCL_MPI
mpiexec=$1
prog=$2
start=$(date +%s)
timeout -k 5 30 "$mpiexec" -n 4 --oversubscribe "$prog" --kill
rc=$?
elapsed=$(($(date +%s) - start))
echo "mpiexec exited with $rc after ${elapsed}s"
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$elapsed" -gt 10 ]; then
    echo "FAIL: expected a non-zero exit of the whole job within 10 s"
    exit 1
fi
echo "ok: the job ended when a rank died"
