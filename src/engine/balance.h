/* Who reads which block in the single pass: every rank's list, the same on
 * every rank.  Dealt at the start (hb_deal_owner); at each agreement of the
 * block loop every rank reports how far down its list it is and how long
 * that took, and hb_work_rebalance moves blocks from the tails of ranks that
 * would finish late to ranks that would finish early.  It is a pure function
 * of the reported numbers, so every rank makes the same moves without
 * further messages.  Private to engine.c. */
#ifndef HB_BALANCE_H
#define HB_BALANCE_H

#include <stddef.h>

typedef struct {
  int size;
  size_t **list;   /* per rank: block numbers in the order that rank reads them */
  size_t *len, *cap;
  size_t *done;    /* per rank: blocks of its list finished (a prefix) */
  double *busy;    /* per rank: seconds spent on them */
  size_t moved;    /* blocks moved by rebalancing so far */
} hb_worklists;

/* The blocks not yet done (done_bytes[b] == 0), dealt with hb_deal_owner. */
int hb_work_init(hb_worklists *wl, int size, const unsigned char *done_bytes, size_t nblocks);
void hb_work_free(hb_worklists *wl);
size_t hb_work_remaining(const hb_worklists *wl);
/* Seconds until the last rank finishes, at each rank's rate so far (the
 * mean rate for a rank that has none yet); 0 if no rank has a rate. */
double hb_work_eta(const hb_worklists *wl);
/* When predicted finishes differ by more than `slack` seconds, give each rank
 * a share of the remaining blocks in proportion to its rate: the first
 * remaining block stays with its rank (it may be read already).  Returns
 * the number of blocks moved (0: nothing changed); -1 out of memory. */
long hb_work_rebalance(hb_worklists *wl, double slack);

#endif
