#include "hb_dtype.h"

#include <string.h>

static const struct {
  const char *name;
  size_t size;
  int is_float, is_signed;
} info[HB_DTYPE_COUNT] = {
    [HB_U8] = {"uint8", 1, 0, 0},    [HB_U16] = {"uint16", 2, 0, 0},
    [HB_U32] = {"uint32", 4, 0, 0},  [HB_U64] = {"uint64", 8, 0, 0},
    [HB_I8] = {"int8", 1, 0, 1},     [HB_I16] = {"int16", 2, 0, 1},
    [HB_I32] = {"int32", 4, 0, 1},   [HB_I64] = {"int64", 8, 0, 1},
    [HB_F32] = {"float32", 4, 1, 1}, [HB_F64] = {"float64", 8, 1, 1},
    [HB_C64] = {"complex64", 8, 1, 1}, [HB_C128] = {"complex128", 16, 1, 1},
};

size_t hb_dtype_size(hb_dtype t) { return info[t].size; }
const char *hb_dtype_name(hb_dtype t) { return info[t].name; }
int hb_dtype_is_float(hb_dtype t) { return info[t].is_float; }
int hb_dtype_is_signed(hb_dtype t) { return info[t].is_signed; }

int hb_dtype_is_complex(hb_dtype t) { return t == HB_C64 || t == HB_C128; }
hb_dtype hb_dtype_real(hb_dtype t) { return t == HB_C64 ? HB_F32 : t == HB_C128 ? HB_F64 : t; }

/* h5py's complex: a compound {r, i} of the part type. */
static hid_t complex_type(hid_t part, size_t size) {
  hid_t t = H5Tcreate(H5T_COMPOUND, 2 * size);
  if (t >= 0 && (H5Tinsert(t, "r", 0, part) < 0 || H5Tinsert(t, "i", size, part) < 0)) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

hb_dtype hb_dtype_sum(hb_dtype t) {
  if (info[t].is_float) return HB_F64;
  return info[t].is_signed ? HB_I64 : HB_U64;
}

hid_t hb_dtype_h5(hb_dtype t) {
  switch (t) {
    case HB_U8: return H5T_NATIVE_UINT8;
    case HB_U16: return H5T_NATIVE_UINT16;
    case HB_U32: return H5T_NATIVE_UINT32;
    case HB_U64: return H5T_NATIVE_UINT64;
    case HB_I8: return H5T_NATIVE_INT8;
    case HB_I16: return H5T_NATIVE_INT16;
    case HB_I32: return H5T_NATIVE_INT32;
    case HB_I64: return H5T_NATIVE_INT64;
    case HB_F32: return H5T_NATIVE_FLOAT;
    case HB_F64: return H5T_NATIVE_DOUBLE;
    case HB_C64: {
      static hid_t c64 = -1;
      if (c64 < 0) c64 = complex_type(H5T_NATIVE_FLOAT, 4);
      return c64;
    }
    case HB_C128: {
      static hid_t c128 = -1;
      if (c128 < 0) c128 = complex_type(H5T_NATIVE_DOUBLE, 8);
      return c128;
    }
    default: return -1;
  }
}

int hb_dtype_from_h5(hid_t type, hb_dtype *out) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    int sgn = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
      case 1: *out = sgn ? HB_I8 : HB_U8; return 0;
      case 2: *out = sgn ? HB_I16 : HB_U16; return 0;
      case 4: *out = sgn ? HB_I32 : HB_U32; return 0;
      case 8: *out = sgn ? HB_I64 : HB_U64; return 0;
    }
  } else if (cls == H5T_FLOAT) {
    if (size == 4) { *out = HB_F32; return 0; }
    if (size == 8) { *out = HB_F64; return 0; }
  } else if (cls == H5T_COMPOUND && H5Tget_nmembers(type) == 2 && (size == 8 || size == 16)) {
    char *r = H5Tget_member_name(type, 0), *i = H5Tget_member_name(type, 1);
    int ok = r && i && !strcmp(r, "r") && !strcmp(i, "i") && H5Tget_member_class(type, 0) == H5T_FLOAT &&
             H5Tget_member_offset(type, 1) == size / 2;
    H5free_memory(r);
    H5free_memory(i);
    if (ok) {
      *out = size == 8 ? HB_C64 : HB_C128;
      return 0;
    }
  }
  return -1;
}

double hb_dtype_get(hb_dtype t, const void *buf, size_t i) {
  switch (t) {
#define X(E, T) case E: return (double)((const T *)buf)[i];
    HB_FOREACH_DTYPE(X)
#undef X
    default: return 0;
  }
}

int hb_dtype_parse(const char *name, hb_dtype *out) {
  for (int t = 0; t < HB_DTYPE_COUNT; t++)
    if (!strcmp(name, info[t].name)) { *out = (hb_dtype)t; return 0; }
  return -1;
}
