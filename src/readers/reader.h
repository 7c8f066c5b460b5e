/* One reader per input format, behind one table (reader.c).  A reader knows
 * its format by the file's structure, lists the arrays a job may pick and
 * reads their calibration; the pixels are read the same way for all
 * (input.c, chunkread.c).  Private to src/readers. */
#ifndef HB_READER_H
#define HB_READER_H

#include "hb_input.h"

typedef struct hb_reader {
  const char *format;    /* input.format */
  const char *looks_for; /* what detect looks for, for "which format" messages */
  const char *pick_key;  /* the input key that names a candidate: signal or dataset */
  /* 1 if the file has this format's structure */
  int (*detect)(hid_t file);
  /* append every array a job may pick, in file order */
  int (*list)(hid_t file, const char *where, hb_candidates *out);
  /* in->dataset is described (shape, dtype): fill in->axes (size, name,
   * units, scale, offset, navigate for the leading nav_dim axes), nav_dim
   * (-1 when the file does not say), title, signal_type */
  int (*calibrate)(hid_t file, const hb_candidate *c, hb_input *in, const char *where);
} hb_reader;

extern const hb_reader hb_reader_hspy, hb_reader_emd, hb_reader_nexus, hb_reader_hdf5;
const hb_reader *hb_reader_named(const char *format);

int hb_candidates_add(hb_candidates *c, const char *name, const char *dataset, const char *group);
/* Names, units and points of in's axes from an NXdata-style group: its
 * @axes (or the signal's older "a:b" @axes, or each axis' @axis = N) naming
 * one dataset per dimension (nexus.c; also for plain HDF5 arrays). */
void hb_nexus_axes(hid_t group, hid_t signal, hb_input *in, int stxm);
/* Uncalibrated axes: scale 1, offset 0, no names, sizes from in->shape. */
void hb_axes_plain(hb_input *in);

#endif
