"""HyperSpy's side of tests/bench/fft.sh: a warm process that runs lazy
fft + save on request.

    hs_fft.py IN.hspy OUT.hspy [--shift] [--no-compression]

Imports HyperSpy and runs the operation once (the warm-up: imports, dask's
first graph, HyperSpy's lazy first-load imports), prints "ready SECONDS",
then for every line "run" on stdin runs it again and prints
"hs_fft SECONDS", timed from hs.load(IN, lazy=True) to the end of
.save(OUT) (HyperSpy's defaults, gzip-4 + shuffle, or no filter at all with
--no-compression).  "quit" ends it.
"""
import os
import sys
import time

import hyperspy.api as hs

src, dst = sys.argv[1:3]
shift = "--shift" in sys.argv[3:]
# compression=None alone keeps HyperSpy's shuffle filter
save_kw = {"compression": None, "shuffle": False} if "--no-compression" in sys.argv[3:] else {}
hs.preferences.General.show_progressbar = False


def once():
    t = time.perf_counter()
    s = hs.load(src, lazy=True)
    s.fft(shift=shift).save(dst, overwrite=True, **save_kw)
    return time.perf_counter() - t


print(f"ready {once():.4f}", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit":
        break
    if cmd == "run":
        print(f"hs_fft {once():.4f}", flush=True)
os.path.exists(dst) and os.unlink(dst)
