/* numpy 1.24's argsort, kind="quicksort" (numpy/core/src/npysort/
 * quicksort.cpp, heapsort.cpp): an introsort whose order of equal keys is
 * whatever its partitions leave, so reproducing it means making the same
 * comparisons and swaps in the same order:
 *
 * - a partition of more than 16 elements takes the median of its first,
 *   middle and last as pivot (sorting those three in place), parks the pivot
 *   next to the last, and sweeps inwards from both ends, each sweep stopping
 *   on a key equal to the pivot; the larger side is pushed, the smaller one
 *   partitioned next;
 * - 16 or fewer: insertion sort;
 * - each partition made costs one level of a depth budget of 2 floor(log2 n);
 *   a pushed side popped with the budget spent is heapsorted instead. */
#include "hb_npsort.h"

#include <string.h>

#define SMALL 16   /* partitions this size or less: insertion sort */
#define STACK 128  /* the larger side is pushed: at most log2(n) deep */

static inline void swap(size_t *a, size_t *b) {
  size_t t = *a;
  *a = *b, *b = t;
}

/* Heap positions count from 1 (children of p: 2p, 2p + 1): position p is
 * a[p - 1].  Move element e down from position p of a heap of n, always
 * towards the larger child (the right one only when strictly larger). */
static void sift(const uint64_t *key, size_t *a, size_t p, size_t n, size_t e) {
  for (size_t c = 2 * p; c <= n; p = c, c *= 2) {
    if (c < n && key[a[c - 1]] < key[a[c]]) c++;
    if (!(key[e] < key[a[c - 1]])) break;
    a[p - 1] = a[c - 1];
  }
  a[p - 1] = e;
}

static void heapsort(const uint64_t *key, size_t *a, size_t n) {
  for (size_t p = n / 2; p > 0; p--) sift(key, a, p, n, a[p - 1]);
  for (; n > 1; n--) {
    size_t e = a[n - 1];
    a[n - 1] = a[0];
    sift(key, a, 1, n - 1, e);
  }
}

int hb_np_argsort(const uint64_t *key, size_t n, size_t *idx) {
  for (size_t i = 0; i < n; i++) idx[i] = i;
  if (n < 2) return 0;
  int depth = 0, heaps = 0;
  for (size_t m = n; m >>= 1;) depth++;
  depth *= 2;
  struct {
    ptrdiff_t lo, hi;
    int depth;
  } stack[STACK];
  int top = 0;
  ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1; /* inclusive */
  for (;;) {
    if (depth < 0) {
      heapsort(key, idx + lo, (size_t)(hi - lo + 1));
      heaps++;
    } else {
      while (hi - lo >= SMALL) {
        ptrdiff_t mid = lo + ((hi - lo) >> 1);
        if (key[idx[mid]] < key[idx[lo]]) swap(&idx[mid], &idx[lo]);
        if (key[idx[hi]] < key[idx[mid]]) swap(&idx[hi], &idx[mid]);
        if (key[idx[mid]] < key[idx[lo]]) swap(&idx[mid], &idx[lo]);
        const uint64_t pivot = key[idx[mid]];
        ptrdiff_t i = lo, j = hi - 1;
        swap(&idx[mid], &idx[j]);
        for (;;) {
          while (key[idx[++i]] < pivot) {}
          while (pivot < key[idx[--j]]) {}
          if (i >= j) break;
          swap(&idx[i], &idx[j]);
        }
        swap(&idx[i], &idx[hi - 1]);
        depth--;
        if (i - lo < hi - i) {
          stack[top].lo = i + 1, stack[top].hi = hi;
          hi = i - 1;
        } else {
          stack[top].lo = lo, stack[top].hi = i - 1;
          lo = i + 1;
        }
        stack[top++].depth = depth;
      }
      for (ptrdiff_t i = lo + 1; i <= hi; i++) {
        size_t e = idx[i];
        ptrdiff_t j = i;
        for (; j > lo && key[e] < key[idx[j - 1]]; j--) idx[j] = idx[j - 1];
        idx[j] = e;
      }
    }
    if (top == 0) break;
    top--;
    lo = stack[top].lo, hi = stack[top].hi, depth = stack[top].depth;
  }
  return heaps;
}

/* Sign bit flipped: two's complement order as unsigned order. */
#define FLIP(bits) ((uint64_t)1 << ((bits) - 1))

static uint64_t float_key(double v) {
  if (v != v) return UINT64_MAX; /* NaN: after everything, all equal */
  if (v == 0) v = 0;             /* -0.0 == 0.0 */
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b >> 63 ? ~b : b | FLIP(64);
}

uint64_t hb_np_key(hb_dtype t, const void *buf, size_t i, int negate) {
  /* unsigned arithmetic wraps as numpy's negation does, without C's signed overflow */
#define UKEY(U, bits, flip)                                         \
  {                                                                 \
    U u = ((const U *)buf)[i];                                      \
    if (negate) u = (U)(0u - u);                                    \
    return (uint64_t)u ^ ((flip) ? FLIP(bits) : 0);                 \
  }
  switch (t) {
    case HB_U8: UKEY(uint8_t, 8, 0)
    case HB_U16: UKEY(uint16_t, 16, 0)
    case HB_U32: UKEY(uint32_t, 32, 0)
    case HB_U64: UKEY(uint64_t, 64, 0)
    case HB_I8: UKEY(uint8_t, 8, 1)
    case HB_I16: UKEY(uint16_t, 16, 1)
    case HB_I32: UKEY(uint32_t, 32, 1)
    case HB_I64: UKEY(uint64_t, 64, 1)
    case HB_F32: {
      double v = ((const float *)buf)[i];
      return float_key(negate ? -v : v);
    }
    case HB_F64: {
      double v = ((const double *)buf)[i];
      return float_key(negate ? -v : v);
    }
    default: return 0;
  }
#undef UKEY
}
