/* The MPI transport behind the meshlm_ccl entry points (ccl.c dispatches here). One endpoint
 * per device that talks MPI: the rank's only device (meshlm_ccl_create_mpi), or one per
 * column in a hybrid mesh, where axis 1 stays on threads. Axis and empty-message checks stay
 * in ccl.c. */
#ifndef MESHLM_MESH_CCL_MPI_H
#define MESHLM_MESH_CCL_MPI_H

#include "mesh/mesh.h"

typedef struct mesh_mpi mesh_mpi;

int mesh_mpi_create(int rows, int cols, const meshlm_ccl_options *opts, meshlm_device *dev, mesh_mpi **out);
/* Hybrid mesh: checks that the job has exactly rows ranks and MPI_THREAD_MULTIPLE, and gives
 * this rank's row. */
int mesh_mpi_hybrid_row(int rows, int *row);
/* The axis-0 endpoint of column col in a hybrid rows×cols mesh: its own communicator over
 * every rank, so each column's device thread calls MPI without ordering against the others.
 * Collective over MPI_COMM_WORLD: every rank creates the columns in the same order. */
int mesh_mpi_create_column(int rows, int cols, int col, const meshlm_ccl_options *opts, mesh_mpi **out);
void mesh_mpi_free(mesh_mpi *m);
int mesh_mpi_axis_size(const mesh_mpi *m, int axis);
int mesh_mpi_all_reduce(mesh_mpi *m, int axis, float *buf, size_t n);
int mesh_mpi_reduce_scatter(mesh_mpi *m, int axis, const float *in, size_t n, float *out);
int mesh_mpi_all_gather(mesh_mpi *m, int axis, const float *in, float *out, const size_t *counts);
int mesh_mpi_all_to_all(mesh_mpi *m, int axis, const float *in, const size_t *send, float *out, const size_t *recv);

#endif
