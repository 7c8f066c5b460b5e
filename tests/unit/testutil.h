/* A tiny shared assert helper for the plain-C unit tests.
 *
 * Every CHECK counts; a failed one prints "FAIL file:line: ..." with what was
 * expected and what was got, and the test goes on.  TEST_DONE(name) prints
 * "name: N checks, F failed" and gives the exit status (0 when all passed). */
#ifndef HB_TESTUTIL_H
#define HB_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int tu_checks, tu_failed;

/* CHECK(cond, "printf-style explanation", ...) */
#define CHECK(cond, ...)                                                      \
  do {                                                                        \
    tu_checks++;                                                              \
    if (!(cond)) {                                                            \
      tu_failed++;                                                            \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
      fprintf(stderr, __VA_ARGS__);                                           \
      fprintf(stderr, "\n");                                                  \
    }                                                                         \
  } while (0)

#define CHECK_INT(got, want)                                                  \
  do {                                                                        \
    long long tu_g_ = (long long)(got), tu_w_ = (long long)(want);            \
    CHECK(tu_g_ == tu_w_, "expected %s == %lld, got %lld", #got, tu_w_, tu_g_); \
  } while (0)

#define CHECK_UINT(got, want)                                                 \
  do {                                                                        \
    unsigned long long tu_g_ = (unsigned long long)(got),                     \
                       tu_w_ = (unsigned long long)(want);                    \
    CHECK(tu_g_ == tu_w_, "expected %s == %llu, got %llu", #got, tu_w_, tu_g_); \
  } while (0)

/* Strings; NULL prints as (null) and only equals NULL. */
#define CHECK_STR(got, want)                                                  \
  do {                                                                        \
    const char *tu_g_ = (got), *tu_w_ = (want);                               \
    CHECK((tu_g_ && tu_w_) ? !strcmp(tu_g_, tu_w_) : tu_g_ == tu_w_,          \
          "expected %s == \"%s\", got \"%s\"", #got, tu_w_ ? tu_w_ : "(null)", \
          tu_g_ ? tu_g_ : "(null)");                                          \
  } while (0)

#define CHECK_CONTAINS(got, needle)                                           \
  do {                                                                        \
    const char *tu_g_ = (got), *tu_n_ = (needle);                             \
    CHECK(tu_g_ && strstr(tu_g_, tu_n_), "expected %s to contain \"%s\", got \"%s\"", \
          #got, tu_n_, tu_g_ ? tu_g_ : "(null)");                             \
  } while (0)

/* |got - want| <= tol (absolute); NaN never passes unless both are NaN. */
#define CHECK_NEAR(got, want, tol)                                            \
  do {                                                                        \
    double tu_g_ = (double)(got), tu_w_ = (double)(want);                     \
    CHECK((isnan(tu_g_) && isnan(tu_w_)) || fabs(tu_g_ - tu_w_) <= (tol),     \
          "expected %s == %.17g (+/- %g), got %.17g", #got, tu_w_, (double)(tol), tu_g_); \
  } while (0)

#define TEST_DONE(name)                                                       \
  (printf("%s: %d checks, %d failed\n", (name), tu_checks, tu_failed),        \
   fflush(stdout), tu_failed ? 1 : 0)

#endif
