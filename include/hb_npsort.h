/* numpy's argsort order, for results that depend on how numpy breaks ties
 * (skimage's peak_local_max keeps the first of equal peaks in
 * np.argsort(-intensities)). */
#ifndef HB_NPSORT_H
#define HB_NPSORT_H

#include <stddef.h>
#include <stdint.h>

#include "hb_dtype.h"

/* A key whose unsigned order is numpy's order of element i of buf (real
 * dtypes), or of its negation computed in the same dtype when negate is set
 * (integers wrap: -0 and -INT_MIN are themselves, an unsigned 1 becomes the
 * type's maximum).  Floats: -0.0 equals 0.0, every NaN equals every other and
 * sorts after +inf, as numpy's sort compares them. */
uint64_t hb_np_key(hb_dtype t, const void *buf, size_t i, int negate);

/* idx = np.argsort(keys) as numpy 1.24 gives it with its default
 * kind="quicksort" (an introsort, not stable): the same permutation, ties
 * included.  Returns how many partitions fell back to heapsort (for tests). */
int hb_np_argsort(const uint64_t *key, size_t n, size_t *idx);

#endif
