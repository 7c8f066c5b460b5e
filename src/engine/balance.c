/* Work lists of the single pass (see balance.h). */
#include "balance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hb_plan.h"

static int append(hb_worklists *wl, int r, size_t block) {
  if (wl->len[r] == wl->cap[r]) {
    size_t cap = wl->cap[r] ? 2 * wl->cap[r] : 16;
    size_t *more = realloc(wl->list[r], cap * sizeof *more);
    if (!more) return -1;
    wl->list[r] = more;
    wl->cap[r] = cap;
  }
  wl->list[r][wl->len[r]++] = block;
  return 0;
}

void hb_work_free(hb_worklists *wl) {
  for (int r = 0; wl->list && r < wl->size; r++) free(wl->list[r]);
  free(wl->list);
  free(wl->len);
  free(wl->cap);
  free(wl->done);
  free(wl->busy);
  memset(wl, 0, sizeof *wl);
}

int hb_work_init(hb_worklists *wl, int size, const unsigned char *done_bytes, size_t nblocks) {
  memset(wl, 0, sizeof *wl);
  wl->size = size;
  wl->list = calloc((size_t)size, sizeof *wl->list);
  wl->len = calloc((size_t)size, sizeof *wl->len);
  wl->cap = calloc((size_t)size, sizeof *wl->cap);
  wl->done = calloc((size_t)size, sizeof *wl->done);
  wl->busy = calloc((size_t)size, sizeof *wl->busy);
  if (!wl->list || !wl->len || !wl->cap || !wl->done || !wl->busy) return -1;
  size_t left = 0;
  for (size_t b = 0; b < nblocks; b++) left += !done_bytes[b];
  for (size_t b = 0, k = 0; b < nblocks; b++)
    if (!done_bytes[b] && append(wl, hb_deal_owner(k++, left, size), b)) return -1;
  return 0;
}

size_t hb_work_remaining(const hb_worklists *wl) {
  size_t n = 0;
  for (int r = 0; r < wl->size; r++) n += wl->len[r] - wl->done[r];
  return n;
}

/* Blocks per second of each rank so far; a rank without any gets the mean
 * of the others.  Returns the sum, 0 if no rank has a rate yet. */
static double rates(const hb_worklists *wl, double *rate) {
  double sum = 0;
  int known = 0;
  for (int r = 0; r < wl->size; r++) {
    rate[r] = wl->done[r] && wl->busy[r] > 0 ? (double)wl->done[r] / wl->busy[r] : 0;
    sum += rate[r];
    known += rate[r] > 0;
  }
  if (!known) return 0;
  double mean = sum / known;
  sum = 0;
  for (int r = 0; r < wl->size; r++) {
    if (rate[r] <= 0) rate[r] = mean;
    sum += rate[r];
  }
  return sum;
}

double hb_work_eta(const hb_worklists *wl) {
  double rate[wl->size], eta = 0;
  if (rates(wl, rate) <= 0) return 0;
  for (int r = 0; r < wl->size; r++) eta = fmax(eta, (double)(wl->len[r] - wl->done[r]) / rate[r]);
  return eta;
}

long hb_work_rebalance(hb_worklists *wl, double slack) {
  int size = wl->size;
  double rate[size];
  double total_rate = rates(wl, rate);
  size_t left = hb_work_remaining(wl);
  if (size < 2 || total_rate <= 0 || !left) return 0;
  double first = INFINITY, last = 0;
  for (int r = 0; r < size; r++) {
    double finish = (double)(wl->len[r] - wl->done[r]) / rate[r];
    first = fmin(first, finish);
    last = fmax(last, finish);
  }
  if (last - first <= slack) return 0;
  /* shares in proportion to rate; what rounding leaves goes to the largest
   * remainders, lowest rank first on ties */
  size_t share[size], given = 0;
  double frac[size];
  for (int r = 0; r < size; r++) {
    double exact = (double)left * rate[r] / total_rate;
    share[r] = (size_t)floor(exact);
    if (share[r] > left) share[r] = left;
    frac[r] = exact - (double)share[r];
    given += share[r];
  }
  while (given < left) {
    int best = 0;
    for (int r = 1; r < size; r++)
      if (frac[r] > frac[best]) best = r;
    share[best]++, frac[best] = -1, given++;
  }
  /* donors give from their tails (keeping their first remaining block), in
   * rank order; receivers take in rank order */
  size_t pool_n = 0, give[size];
  for (int r = 0; r < size; r++) {
    size_t rem = wl->len[r] - wl->done[r], keep = share[r] > 1 ? share[r] : 1;
    give[r] = rem > keep ? rem - keep : 0;
    pool_n += give[r];
  }
  if (!pool_n) return 0;
  size_t *pool = malloc(pool_n * sizeof *pool), n = 0;
  if (!pool) return -1;
  for (int r = 0; r < size; r++) {
    wl->len[r] -= give[r];
    memcpy(pool + n, wl->list[r] + wl->len[r], give[r] * sizeof *pool);
    n += give[r];
  }
  size_t next = 0;
  for (int r = 0; r < size && next < pool_n; r++) {
    size_t rem = wl->len[r] - wl->done[r];
    for (size_t k = rem; k < share[r] && next < pool_n; k++)
      if (append(wl, r, pool[next++])) {
        free(pool);
        return -1;
      }
  }
  /* the receivers' needs add up to at least what the donors gave (the shares
   * sum to the remaining blocks), so the pool is empty here */
  free(pool);
  wl->moved += pool_n;
  return (long)pool_n;
}
