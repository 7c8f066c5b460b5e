/* HDF5's shuffle filter and its inverse, as the readers and writers apply
 * them (chunkread.c, chunkwrite.c): the inverse of a shuffle is the data,
 * and every range of elements unshuffles to the reference's bytes, for
 * element sizes 1-16 (the 2-, 4- and 8-byte vector paths among them),
 * lengths around the 16-element step and ranges at odd offsets. */
#include <stdlib.h>
#include <string.h>

#include "chunkread.h"
#include "chunkwrite.h"
#include "testutil.h"

int main(void) {
  const size_t sizes[] = {1, 2, 3, 4, 8, 16};
  const size_t lengths[] = {0, 1, 15, 16, 17, 31, 33, 64, 100, 1000, 4099};
  unsigned seed = 12345;
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
      size_t es = sizes[si], n = lengths[li], bytes = es * n + 1;
      unsigned char *data = malloc(bytes), *shuf = malloc(bytes), *back = malloc(bytes), *want = malloc(bytes);
      for (size_t i = 0; i < bytes; i++) seed = seed * 1103515245u + 12345u, data[i] = (unsigned char)(seed >> 16);
      hb_shuffle(data, shuf, n, es);
      for (size_t j = 0; j < es; j++) /* the reference: byte plane j holds byte j of every element */
        for (size_t i = 0; i < n; i++) want[j * n + i] = data[i * es + j];
      CHECK(!memcmp(shuf, want, es * n), "hb_shuffle, %zu-byte elements, %zu of them", es, n);
      memset(back, 0xa5, bytes);
      hb_unshuffle(shuf, back, n, es);
      CHECK(!memcmp(back, data, es * n) && back[es * n] == 0xa5, "unshuffle(shuffle(x)) == x, %zu-byte elements, %zu", es,
            n);
      size_t firsts[] = {0, 1, 7, n / 3}, counts[] = {n, 16, 17, 35};
      for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
          size_t first = firsts[a], count = counts[b];
          if (first + count > n) continue;
          memset(back, 0xa5, bytes);
          hb_unshuffle_range(shuf, n, es, first, count, back);
          CHECK(!memcmp(back, data + first * es, count * es) && back[count * es] == 0xa5,
                "elements [%zu, %zu) of %zu, %zu-byte", first, first + count, n, es);
        }
      free(data), free(shuf), free(back), free(want);
    }
  return TEST_DONE("test_shuffle");
}
