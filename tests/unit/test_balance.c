/* hb_work_*: the single pass's block lists and their rebalancing.  Every
 * block is on exactly one list before and after; a rank keeps the finished
 * prefix of its list and its first remaining block; shares follow the
 * ranks' rates; nothing moves within the slack or without rates. */
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "testutil.h"

/* Every block 0..n-1 appears once over all lists (done or not). */
static int each_once(const hb_worklists *wl, size_t n) {
  unsigned char *seen = calloc(n, 1);
  int ok = seen != NULL;
  for (int r = 0; ok && r < wl->size; r++)
    for (size_t i = 0; i < wl->len[r]; i++) {
      size_t b = wl->list[r][i];
      ok = b < n && !seen[b];
      if (ok) seen[b] = 1;
    }
  for (size_t b = 0; ok && b < n; b++) ok = seen[b];
  free(seen);
  return ok;
}

int main(void) {
  enum { N = 300 };
  unsigned char done_bytes[N] = {0};
  hb_worklists wl;
  CHECK(!hb_work_init(&wl, 3, done_bytes, N), "init");
  CHECK(each_once(&wl, N) && wl.len[0] == 100 && wl.len[1] == 100 && wl.len[2] == 100, "dealt evenly, each block once");
  CHECK(hb_work_rebalance(&wl, 0) == 0 && hb_work_eta(&wl) == 0, "no rates yet: nothing moves, no estimate");

  /* rank 1 at half the speed of the others */
  wl.done[0] = 20, wl.busy[0] = 1.0;
  wl.done[1] = 10, wl.busy[1] = 1.0;
  wl.done[2] = 20, wl.busy[2] = 1.0;
  size_t prefix[3][20], first[3];
  for (int r = 0; r < 3; r++) {
    memcpy(prefix[r], wl.list[r], wl.done[r] * sizeof(size_t));
    first[r] = wl.list[r][wl.done[r]];
  }
  CHECK(hb_work_rebalance(&wl, 1e9) == 0, "within the slack: nothing moves");
  double eta = hb_work_eta(&wl);
  CHECK(eta > 8.9 && eta < 9.1, "eta: rank 1's 90 blocks at 10 per second (%g s)", eta);
  long moved = hb_work_rebalance(&wl, 0.5);
  CHECK(moved > 0 && (size_t)moved == wl.moved, "beyond the slack: blocks move (%ld)", moved);
  CHECK(each_once(&wl, N), "after the move every block is on one list once");
  int kept = 1;
  for (int r = 0; r < 3; r++)
    kept &= !memcmp(prefix[r], wl.list[r], wl.done[r] * sizeof(size_t)) && wl.list[r][wl.done[r]] == first[r];
  CHECK(kept, "each rank keeps its finished blocks and its first remaining block");
  /* 250 left, rates 20:10:20 -> 100, 50, 100 */
  size_t rem[3];
  for (int r = 0; r < 3; r++) rem[r] = wl.len[r] - wl.done[r];
  CHECK(rem[0] + rem[1] + rem[2] == 250 && rem[1] == 50 && rem[0] == 100 && rem[2] == 100,
        "shares follow the rates: %zu %zu %zu", rem[0], rem[1], rem[2]);
  eta = hb_work_eta(&wl);
  CHECK(eta > 4.9 && eta < 5.1, "finishes agree after the move (eta %g s)", eta);
  CHECK(hb_work_rebalance(&wl, 0.5) == 0, "balanced: a second call moves nothing");

  /* a rank that has finished its list gets work from the others */
  wl.done[0] = wl.len[0], wl.busy[0] = 6.0;
  moved = hb_work_rebalance(&wl, 0.1);
  CHECK(moved > 0 && wl.len[0] > wl.done[0] && each_once(&wl, N), "an idle rank receives blocks (%ld)", moved);
  hb_work_free(&wl);

  /* a checkpoint's finished blocks are not dealt */
  for (size_t b = 0; b < N; b += 2) done_bytes[b] = 1;
  CHECK(!hb_work_init(&wl, 2, done_bytes, N) && hb_work_remaining(&wl) == N / 2, "only blocks not done are dealt");
  hb_work_free(&wl);
  return TEST_DONE("test_balance");
}
