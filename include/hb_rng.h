/* Reproducible random numbers: xoshiro256** seeded through splitmix64, one
 * independent stream per (seed, stream) pair, so a value depends on where it
 * is used (a pattern, a block), never on which rank or thread draws it. */
#ifndef HB_RNG_H
#define HB_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t s[4];
} hb_rng;

static inline uint64_t hb_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static inline void hb_rng_seed(hb_rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed;
  x = hb_splitmix(&x) ^ (stream * 0xD1B54A32D192ED03ULL); /* decorrelate streams */
  for (int i = 0; i < 4; i++) r->s[i] = hb_splitmix(&x);
}

static inline uint64_t hb_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t hb_rng_next(hb_rng *r) {
  uint64_t *s = r->s, out = hb_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = hb_rotl(s[3], 45);
  return out;
}

/* Uniform in [0, 1), 53 bits. */
static inline double hb_rng_unif(hb_rng *r) { return (double)(hb_rng_next(r) >> 11) * 0x1.0p-53; }

#endif
