/* Numeric element types, read and written in the file's own type. */
#ifndef HB_DTYPE_H
#define HB_DTYPE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  HB_U8, HB_U16, HB_U32, HB_U64,
  HB_I8, HB_I16, HB_I32, HB_I64,
  HB_F32, HB_F64,
  HB_C64, HB_C128, /* complex: two float32 / float64, stored as h5py does (compound r, i) */
  HB_DTYPE_COUNT
} hb_dtype;

/* X-macro over every real dtype: X(enum, C type). Kernels expand their
 * typed loops with it instead of writing ten copies.  Complex patterns
 * reach only the ops that declare they take them (hb_stream_check_real). */
#define HB_FOREACH_DTYPE(X) \
  X(HB_U8, uint8_t)         \
  X(HB_U16, uint16_t)       \
  X(HB_U32, uint32_t)       \
  X(HB_U64, uint64_t)       \
  X(HB_I8, int8_t)          \
  X(HB_I16, int16_t)        \
  X(HB_I32, int32_t)        \
  X(HB_I64, int64_t)        \
  X(HB_F32, float)          \
  X(HB_F64, double)

/* The same list again, for a loop over pairs of types (a cast from each to
 * each): the preprocessor expands no macro inside its own expansion. */
#define HB_FOREACH_DTYPE_INNER(X) \
  X(HB_U8, uint8_t)               \
  X(HB_U16, uint16_t)             \
  X(HB_U32, uint32_t)             \
  X(HB_U64, uint64_t)             \
  X(HB_I8, int8_t)                \
  X(HB_I16, int16_t)              \
  X(HB_I32, int32_t)              \
  X(HB_I64, int64_t)              \
  X(HB_F32, float)                \
  X(HB_F64, double)

size_t hb_dtype_size(hb_dtype t);
const char *hb_dtype_name(hb_dtype t); /* numpy spelling: "uint16" */
int hb_dtype_is_float(hb_dtype t);
int hb_dtype_is_signed(hb_dtype t);
int hb_dtype_is_complex(hb_dtype t);
/* The real type of one part of a complex type (the type itself otherwise). */
hb_dtype hb_dtype_real(hb_dtype t);
/* numpy's accumulator for sum(): uint64 / int64 / float64. */
hb_dtype hb_dtype_sum(hb_dtype t);
/* Native HDF5 memory type (no conversion on read).  Complex types are a
 * compound of `r` and `i`, made once and never closed. */
hid_t hb_dtype_h5(hb_dtype t);
/* Map an HDF5 file type; returns -1 if it is not a plain integer, float or
 * complex (compound r, i) type. */
int hb_dtype_from_h5(hid_t type, hb_dtype *out);
/* Element i of a typed buffer as double. */
double hb_dtype_get(hb_dtype t, const void *buf, size_t i);
/* Parse "uint16" etc.; -1 if unknown. */
int hb_dtype_parse(const char *name, hb_dtype *out);

#endif
