"""HyperSpy's side of tests/bench/transform.sh: a warm process that runs a
lazy transform + save on request.

    hs_transform.py fft|rebin|thin|region IN.hspy OUT.hspy [--shift] [--no-compression]
                    [--crop X0,X1,Y0,Y1] [--step S] [--region "A:B, C:D"]

fft: s.fft(shift=...); rebin: s.isig[X0:X1, Y0:Y1].rebin(scale=(1, 1, 2, 2))
(a 4-D input); thin: s.inav[::S]; region: s.inav[A:B, C:D].  Imports HyperSpy and runs the operation once (the warm-up:
imports, dask's first graph, HyperSpy's lazy first-load imports), prints
"ready SECONDS", then for every line "run" on stdin runs it again and prints
"done SECONDS", timed from hs.load(IN, lazy=True) to the end of .save(OUT)
(HyperSpy's defaults, gzip-4 + shuffle, or no filter at all with
--no-compression).  "quit" ends it.
"""
import os
import sys
import time

import hyperspy.api as hs

op, src, dst = sys.argv[1:4]
flags = sys.argv[4:]
shift = "--shift" in flags
crop = [int(v) for v in flags[flags.index("--crop") + 1].split(",")] if "--crop" in flags else None
step = int(flags[flags.index("--step") + 1]) if "--step" in flags else 16
region = flags[flags.index("--region") + 1] if "--region" in flags else None  # "a:b, c:d" in indices
# compression=None alone keeps HyperSpy's shuffle filter
save_kw = {"compression": None, "shuffle": False} if "--no-compression" in flags else {}
hs.preferences.General.show_progressbar = False


def transform(s):
    if op == "fft":
        return s.fft(shift=shift)
    if op == "thin":
        return s.inav[::step]
    if op == "region":
        return s.inav[tuple(slice(*map(int, part.split(":"))) for part in region.split(","))]
    x0, x1, y0, y1 = crop
    return s.isig[x0:x1, y0:y1].rebin(scale=(1, 1, 2, 2))


def once():
    t = time.perf_counter()
    s = hs.load(src, lazy=True)
    transform(s).save(dst, overwrite=True, **save_kw)
    return time.perf_counter() - t


print(f"ready {once():.4f}", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit":
        break
    if cmd == "run":
        print(f"done {once():.4f}", flush=True)
os.path.exists(dst) and os.unlink(dst)
