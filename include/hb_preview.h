/* PNG previews with libpng. */
#ifndef HB_PREVIEW_H
#define HB_PREVIEW_H

#include <stddef.h>

/* Grey image of h×w values (row-major), scaled to its 1st–99th percentile;
 * NaNs are black.  Small images are enlarged by an integer factor so the
 * PNG is at least ~256 px on its longer side. */
int hb_preview_image(const char *png_path, const double *data, size_t h, size_t w);
/* A simple line plot of n values against their index, in a frame. */
int hb_preview_line(const char *png_path, const double *y, size_t n);

#endif
