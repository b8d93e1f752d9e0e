/* The MPI transport behind the meshlm_ccl entry points (ccl.c dispatches here). One device
 * per rank; axis and empty-message checks stay in ccl.c. */
#ifndef MESHLM_MESH_CCL_MPI_H
#define MESHLM_MESH_CCL_MPI_H

#include "mesh/mesh.h"

typedef struct mesh_mpi mesh_mpi;

int mesh_mpi_create(int rows, int cols, const meshlm_ccl_options *opts, meshlm_device *dev, mesh_mpi **out);
void mesh_mpi_free(mesh_mpi *m);
int mesh_mpi_axis_size(const mesh_mpi *m, int axis);
int mesh_mpi_all_reduce(mesh_mpi *m, int axis, float *buf, size_t n);
int mesh_mpi_reduce_scatter(mesh_mpi *m, int axis, const float *in, size_t n, float *out);
int mesh_mpi_all_gather(mesh_mpi *m, int axis, const float *in, float *out, const size_t *counts);

#endif
