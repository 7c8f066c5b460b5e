/* Progress on rank 0: percentage, blocks, GB/s and ETA. */
#include "hb_progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "hb_timing.h"

void hb_timestamp(char *buf, size_t n) {
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
}

void hb_progress_start(hb_progress *p, hb_progress_mode mode, size_t total_blocks, double total_bytes) {
  p->off = mode == HB_PROGRESS_OFF;
  p->bar = mode == HB_PROGRESS_BAR || (mode == HB_PROGRESS_AUTO && isatty(STDERR_FILENO));
  p->t0 = p->last = hb_now();
  p->total_blocks = total_blocks;
  p->total_bytes = total_bytes;
  p->last_pct = -1;
}

static void format_eta(double s, char *buf, size_t n) {
  if (s < 0 || s > 1e7) snprintf(buf, n, "--:--");
  else snprintf(buf, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

static void show(hb_progress *p, size_t done, double bytes, int final) {
  double now = hb_now(), el = now - p->t0;
  int pct = p->total_blocks ? (int)(100.0 * (double)done / (double)p->total_blocks) : 100;
  double rate = el > 0 ? bytes / el / 1e9 : 0;
  double eta = done ? el * (double)(p->total_blocks - done) / (double)done : -1;
  char etas[32];
  format_eta(eta, etas, sizeof etas);
  if (p->bar) {
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %3d%%  %zu/%zu blocks  %.2f GB/s  ETA %s%s", bar, pct, done, p->total_blocks, rate, etas,
            final ? "\n" : "  ");
  } else {
    char ts[32];
    hb_timestamp(ts, sizeof ts);
    fprintf(stderr, "%s hyperbatch: %3d%%  %zu/%zu blocks  %.2f GB/s  ETA %s\n", ts, pct, done, p->total_blocks, rate,
            etas);
  }
  fflush(stderr);
  p->last = now;
  p->last_pct = pct;
}

void hb_progress_update(hb_progress *p, size_t done_blocks, double done_bytes) {
  if (p->off) return;
  double now = hb_now();
  int pct = p->total_blocks ? (int)(100.0 * (double)done_blocks / (double)p->total_blocks) : 100;
  /* a bar redraws a few times a second; log lines every 10% or 10 s */
  if (p->bar ? now - p->last >= 0.2 : (pct / 10 > p->last_pct / 10 && now - p->last >= 1.0) || now - p->last >= 10)
    show(p, done_blocks, done_bytes, 0);
}

void hb_progress_end(hb_progress *p, size_t done_blocks, double done_bytes) {
  if (!p->off) show(p, done_blocks, done_bytes, 1);
}
