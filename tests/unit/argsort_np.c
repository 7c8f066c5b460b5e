/* hb_np_argsort of the negated values, for test_argsort.py to hold against
 * np.argsort(-a).  usage: argsort_np DTYPE < records > results
 * A record is a uint64 n and n values of DTYPE (native byte order); its
 * result a uint64 count of heapsorted partitions, then the n indices as
 * uint64. */
#include <stdio.h>
#include <stdlib.h>

#include "hb_dtype.h"
#include "hb_npsort.h"

int main(int argc, char **argv) {
  hb_dtype t;
  if (argc != 2 || hb_dtype_parse(argv[1], &t) != 0 || hb_dtype_is_complex(t)) {
    fprintf(stderr, "usage: argsort_np DTYPE < records\n");
    return 2;
  }
  size_t size = hb_dtype_size(t);
  uint64_t n;
  while (fread(&n, sizeof n, 1, stdin) == 1) {
    void *buf = malloc(n * size + 1);
    uint64_t *key = malloc(n * sizeof *key + 1);
    size_t *idx = malloc(n * sizeof *idx + 1);
    uint64_t *out = malloc(n * sizeof *out + 1);
    if (!buf || !key || !idx || !out || fread(buf, size, n, stdin) != n) {
      fprintf(stderr, "argsort_np: short or unreadable record of %llu values\n", (unsigned long long)n);
      return 1;
    }
    for (size_t i = 0; i < n; i++) key[i] = hb_np_key(t, buf, i, 1);
    uint64_t heaps = (uint64_t)hb_np_argsort(key, n, idx);
    for (size_t i = 0; i < n; i++) out[i] = idx[i];
    fwrite(&heaps, sizeof heaps, 1, stdout);
    fwrite(out, sizeof *out, n, stdout);
    free(buf), free(key), free(idx), free(out);
  }
  return fflush(stdout) ? 1 : 0;
}
