/* GGUF model files (versions 2 and 3): a validating, memory-mapped reader and a
 * streaming writer. Knows nothing of transformers. */
#ifndef MESHLM_IO_GGUF_H
#define MESHLM_IO_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Metadata value types, with GGUF's ids. */
typedef enum meshlm_gguf_vtype {
    MESHLM_GGUF_U8 = 0, MESHLM_GGUF_I8 = 1, MESHLM_GGUF_U16 = 2, MESHLM_GGUF_I16 = 3,
    MESHLM_GGUF_U32 = 4, MESHLM_GGUF_I32 = 5, MESHLM_GGUF_F32 = 6, MESHLM_GGUF_BOOL = 7,
    MESHLM_GGUF_STRING = 8, MESHLM_GGUF_ARRAY = 9, MESHLM_GGUF_U64 = 10, MESHLM_GGUF_I64 = 11,
    MESHLM_GGUF_F64 = 12,
} meshlm_gguf_vtype;

enum { MESHLM_GGUF_MAX_DIMS = 4, MESHLM_GGUF_DEFAULT_ALIGNMENT = 32 };

/* "u32", "string", ...; "invalid-type" outside the enum. */
const char *meshlm_gguf_vtype_name(int vtype);
/* Bytes of one value of a fixed-size type; 0 for strings, arrays and invalid types. */
size_t meshlm_gguf_vtype_size(int vtype);

typedef struct meshlm_gguf_tensor {
    const char *name;             /* NUL-terminated copy */
    int type;                     /* meshlm_type id */
    int n_dims;                   /* 1..4 */
    int64_t ne[MESHLM_GGUF_MAX_DIMS]; /* ne[0] is the row length (contiguous); unused dims are 1 */
    uint64_t offset;              /* from the start of the file */
    size_t nbytes;
    const void *data;             /* inside the mapping */
} meshlm_gguf_tensor;

typedef struct meshlm_gguf meshlm_gguf;

/* Maps and validates path. On failure the message names the file, the field or tensor,
 * and the byte offset. */
int meshlm_gguf_open(const char *path, meshlm_gguf **out);
/* The same over a caller's buffer (not copied; must outlive the handle); name is used in
 * messages. */
int meshlm_gguf_open_memory(const void *buf, size_t size, const char *name, meshlm_gguf **out);
void meshlm_gguf_close(meshlm_gguf *g);

const char *meshlm_gguf_path(const meshlm_gguf *g);
uint32_t meshlm_gguf_version(const meshlm_gguf *g);
uint32_t meshlm_gguf_alignment(const meshlm_gguf *g);
size_t meshlm_gguf_file_size(const meshlm_gguf *g);
/* Start of the data section (tensor offsets in the file are relative to it). */
size_t meshlm_gguf_data_offset(const meshlm_gguf *g);

/* Metadata: keys by index, or look-up by name (-1 if absent). */
int64_t meshlm_gguf_n_kv(const meshlm_gguf *g);
const char *meshlm_gguf_key(const meshlm_gguf *g, int64_t i);
int meshlm_gguf_kv_type(const meshlm_gguf *g, int64_t i);
int64_t meshlm_gguf_find_key(const meshlm_gguf *g, const char *key);

/* Typed getters: MESHLM_OK; MESHLM_ERR_NOT_FOUND if the key is absent (message set);
 * MESHLM_ERR_FORMAT if present with an incompatible type or a value out of the
 * target's range (message names key, found type and value). get_int accepts every
 * integer type; get_float accepts F32 and F64. Strings are not NUL-terminated. */
int meshlm_gguf_get_int(const meshlm_gguf *g, const char *key, int64_t *out);
int meshlm_gguf_get_float(const meshlm_gguf *g, const char *key, double *out);
int meshlm_gguf_get_bool(const meshlm_gguf *g, const char *key, bool *out);
int meshlm_gguf_get_str(const meshlm_gguf *g, const char *key, const char **s, size_t *len);

/* Arrays: element type and count; for non-string arrays, *data points at the packed
 * little-endian elements in the mapping (may be unaligned: read with memcpy). */
int meshlm_gguf_get_arr(const meshlm_gguf *g, const char *key, int *elem_type, uint64_t *n,
                        const void **data);
/* Element i of a string array. */
int meshlm_gguf_get_arr_str(const meshlm_gguf *g, const char *key, uint64_t i,
                            const char **s, size_t *len);

/* Tensors, in file order; look-up by name returns NULL if absent. */
int64_t meshlm_gguf_n_tensors(const meshlm_gguf *g);
const meshlm_gguf_tensor *meshlm_gguf_tensor_at(const meshlm_gguf *g, int64_t i);
const meshlm_gguf_tensor *meshlm_gguf_find_tensor(const meshlm_gguf *g, const char *name);

/* Writer: metadata and tensor descriptions are collected first, then write() streams the
 * header and asks fill() for each tensor's bytes, in the order tensors were added. */
typedef struct meshlm_gguf_writer meshlm_gguf_writer;
typedef int (*meshlm_gguf_fill_fn)(void *user, int64_t index, const meshlm_gguf_tensor *t,
                                   void *buf);

int meshlm_gguf_writer_create(meshlm_gguf_writer **out);
void meshlm_gguf_writer_free(meshlm_gguf_writer *w);
int meshlm_gguf_set_u32(meshlm_gguf_writer *w, const char *key, uint32_t v);
int meshlm_gguf_set_i32(meshlm_gguf_writer *w, const char *key, int32_t v);
int meshlm_gguf_set_f32(meshlm_gguf_writer *w, const char *key, float v);
int meshlm_gguf_set_bool(meshlm_gguf_writer *w, const char *key, bool v);
int meshlm_gguf_set_str(meshlm_gguf_writer *w, const char *key, const char *v);
/* Arrays are copied. */
int meshlm_gguf_set_arr_str(meshlm_gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n);
int meshlm_gguf_set_arr_f32(meshlm_gguf_writer *w, const char *key, const float *v, uint64_t n);
int meshlm_gguf_set_arr_i32(meshlm_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Any fixed-size scalar type (not string or array); v points at one host value. */
int meshlm_gguf_set_val(meshlm_gguf_writer *w, const char *key, int vtype, const void *v);
/* An array of any fixed-size element type; v holds n packed host values. */
int meshlm_gguf_set_arr(meshlm_gguf_writer *w, const char *key, int elem_type, const void *v,
                        uint64_t n);
int meshlm_gguf_add_tensor(meshlm_gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne);
/* Writes a GGUF v3 file with general.alignment's default (32), or the u32 value set for
 * that key. fill() gets a buffer of t->nbytes bytes; a non-zero return aborts the write and
 * is returned. The file is written as path + ".partial" and renamed over path only when
 * complete; on failure the partial file is removed. Setting a key again replaces its value. */
int meshlm_gguf_write(meshlm_gguf_writer *w, const char *path, meshlm_gguf_fill_fn fill,
                      void *user);

#endif
