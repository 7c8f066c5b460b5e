/* Rank 0's progress report: a bar on a terminal, timestamped lines otherwise. */
#ifndef HB_PROGRESS_H
#define HB_PROGRESS_H

#include <stddef.h>
#include "hb_job.h"

typedef struct {
  int bar;          /* 1: redraw a bar; 0: log lines */
  int off;
  double t0, last;
  size_t total_blocks;
  double total_bytes;
  int last_pct;
} hb_progress;

void hb_progress_start(hb_progress *p, hb_progress_mode mode, size_t total_blocks, double total_bytes);
void hb_progress_update(hb_progress *p, size_t done_blocks, double done_bytes);
void hb_progress_end(hb_progress *p, size_t done_blocks, double done_bytes);
/* "2026-11-22T02:04:16" in local time. */
void hb_timestamp(char *buf, size_t n);

#endif
