"""Re-save a hyperbatch synth file with HyperSpy, so that HyperSpy writes it.

    hs_save.py IN.hspy OUT.hspy gzip|none

Loads IN lazily and saves it with HyperSpy's defaults (gzip-4 + shuffle, and
the lazy array's chunks, which are the input's) or with no filter at all.
Writes to OUT.tmp first and renames, so an interrupted run leaves no file
that looks complete.
"""
import os
import sys

import hyperspy.api as hs

src, dst, comp = sys.argv[1:4]
s = hs.load(src, lazy=True)
tmp = dst + ".tmp.hspy"
# compression=None alone keeps HyperSpy's default shuffle filter; a plain
# uncompressed file needs shuffle=False as well.
kw = {} if comp == "gzip" else {"compression": None, "shuffle": False}
hs.preferences.General.show_progressbar = False
s.save(tmp, overwrite=True, **kw)
del s
os.replace(tmp, dst)
print(f"hs_save: wrote {dst} ({comp})")
