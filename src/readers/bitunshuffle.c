/* Bitshuffle's bit transpose undone with AVX-512 and GFNI, for 1-, 2- and
 * 4-byte elements: the hot step of a bitshuffle/LZ4 read.  Debian 12's
 * bitshuffle library is built for SSE2 and undoes 2-byte blocks at 5.5 GB/s
 * on one core of the benchmark machine, this at 37 GB/s (tests/bench/lz4_limit
 * prints both); LZ4 decodes the same blocks at 6-8 GB/s.  Other element
 * sizes and CPUs use the library (filters.c).
 *
 * A transposed block of n elements of es bytes is 8*es rows of n/8 bytes:
 * bit i of byte m of row (8*j + k) is bit k of byte j of element 8*m + i
 * (tests/unit/test_bitunshuffle.c checks this against the library). */
#include "filters.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define GFNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi,gfni")))

/* Plane j (byte j of every element) of the 64 elements 8*m0 .. 8*m0+63. */
GFNI_TARGET static inline __m512i plane(const unsigned char *in, size_t row_bytes, size_t j, size_t m0) {
  uint64_t q[8];
  for (int k = 0; k < 8; k++) memcpy(&q[k], in + (8 * j + (size_t)k) * row_bytes + m0, 8);
  __m512i rows = _mm512_loadu_si512(q); /* qword k: bytes m0..m0+7 of row k */
  /* 8x8 byte transpose, rows reversed: qword b, byte 7-k = row k's byte b */
  static const uint8_t byte_t[64] = {
      56, 48, 40, 32, 24, 16, 8, 0, 57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2,
      59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36, 28, 20, 12, 4, 61, 53, 45, 37, 29, 21, 13, 5,
      62, 54, 46, 38, 30, 22, 14, 6, 63, 55, 47, 39, 31, 23, 15, 7};
  __m512i m = _mm512_permutexvar_epi8(_mm512_loadu_si512(byte_t), rows);
  /* 8x8 bit transpose of each qword: the affine map takes byte i of its
   * first operand (here 1 << i) through the qword as a matrix whose byte
   * 7 - t gives result bit t */
  return _mm512_gf2p8affine_epi64_epi8(_mm512_set1_epi64((long long)0x8040201008040201ULL), m, 0);
}

/* Indexes that interleave units of w bytes of two vectors a, b as a0 b0
 * a1 b1 ...: zip_lo[w] takes the first half of each, zip_hi[w] the rest. */
static uint8_t zip8_lo[64], zip8_hi[64];
static uint16_t zip16_lo[32], zip16_hi[32];
static int have_gfni;

void hb_bitunshuffle_init(void) {
  static int done;
  if (done) return;
  done = 1;
  __builtin_cpu_init();
  have_gfni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni");
  for (int u = 0; u < 64; u++) zip8_lo[u] = (uint8_t)(u / 2 | (u & 1) * 64), zip8_hi[u] = (uint8_t)(zip8_lo[u] + 32);
  for (int u = 0; u < 32; u++) zip16_lo[u] = (uint16_t)(u / 2 | (u & 1) * 32), zip16_hi[u] = (uint16_t)(zip16_lo[u] + 16);
}

GFNI_TARGET static void untrans_gfni(const unsigned char *in, unsigned char *out, size_t n, size_t es) {
  const __m512i b_lo = _mm512_loadu_si512(zip8_lo), b_hi = _mm512_loadu_si512(zip8_hi);
  const __m512i w_lo = _mm512_loadu_si512(zip16_lo), w_hi = _mm512_loadu_si512(zip16_hi);
  size_t row = n / 8;
  for (size_t m0 = 0; m0 < row; m0 += 8) {
    unsigned char *o = out + 8 * m0 * es;
    if (es == 1) {
      _mm512_storeu_si512(o, plane(in, row, 0, m0));
    } else if (es == 2) {
      __m512i p0 = plane(in, row, 0, m0), p1 = plane(in, row, 1, m0);
      _mm512_storeu_si512(o, _mm512_permutex2var_epi8(p0, b_lo, p1));
      _mm512_storeu_si512(o + 64, _mm512_permutex2var_epi8(p0, b_hi, p1));
    } else { /* bytes 0,1 and 2,3 zipped into 2-byte units, then those zipped */
      __m512i p0 = plane(in, row, 0, m0), p1 = plane(in, row, 1, m0);
      __m512i p2 = plane(in, row, 2, m0), p3 = plane(in, row, 3, m0);
      __m512i a_lo = _mm512_permutex2var_epi8(p0, b_lo, p1), a_hi = _mm512_permutex2var_epi8(p0, b_hi, p1);
      __m512i c_lo = _mm512_permutex2var_epi8(p2, b_lo, p3), c_hi = _mm512_permutex2var_epi8(p2, b_hi, p3);
      _mm512_storeu_si512(o, _mm512_permutex2var_epi16(a_lo, w_lo, c_lo));
      _mm512_storeu_si512(o + 64, _mm512_permutex2var_epi16(a_lo, w_hi, c_lo));
      _mm512_storeu_si512(o + 128, _mm512_permutex2var_epi16(a_hi, w_lo, c_hi));
      _mm512_storeu_si512(o + 192, _mm512_permutex2var_epi16(a_hi, w_hi, c_hi));
    }
  }
}

int hb_bitunshuffle_fast(const unsigned char *in, unsigned char *out, size_t n, size_t es) {
  if (!have_gfni || n % 64 || (es != 1 && es != 2 && es != 4)) return 0;
  untrans_gfni(in, out, n, es);
  return 1;
}

#else
void hb_bitunshuffle_init(void) {}
int hb_bitunshuffle_fast(const unsigned char *in, unsigned char *out, size_t n, size_t es) {
  (void)in, (void)out, (void)n, (void)es;
  return 0;
}
#endif
