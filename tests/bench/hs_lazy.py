"""HyperSpy lazy computing what the benchmark job computes.

    hs_lazy.py FILE

Times, inside Python and after the import, from hs.load(FILE, lazy=True) to
the last of three results: the sum over the signal axes (one value per
pattern), the mean pattern and the max pattern.  Prints one line:

    hs_lazy total_s T sum_s A mean_s B max_s C first_load_s L

HyperSpy imports most of itself lazily on the first hs.load (1-2 s here), so
the file is loaded once, untimed, before the clock starts: that one-off cost
is import, not work on the data, and leaving it out only favours HyperSpy.
It is printed as first_load_s.

Peak RSS is measured from outside (/usr/bin/time -v) by bench.sh.
"""
import sys
import time

import hyperspy.api as hs

hs.preferences.General.show_progressbar = False
f = sys.argv[1]

t = time.perf_counter()
warm = hs.load(f, lazy=True)
first_load = time.perf_counter() - t
del warm

t0 = time.perf_counter()
s = hs.load(f, lazy=True)
total = s.sum(axis=s.axes_manager.signal_axes)
total.compute()
t1 = time.perf_counter()
mean_dp = s.mean(axis=s.axes_manager.navigation_axes)
mean_dp.compute()
t2 = time.perf_counter()
max_dp = s.max(axis=s.axes_manager.navigation_axes)
max_dp.compute()
t3 = time.perf_counter()

# a cheap sanity check that the results exist and have the expected shapes
assert total.data.shape == s.axes_manager.navigation_shape[::-1], total.data.shape
assert mean_dp.data.shape == s.axes_manager.signal_shape[::-1], mean_dp.data.shape
assert max_dp.data.shape == s.axes_manager.signal_shape[::-1], max_dp.data.shape
print(f"hs_lazy total_s {t3 - t0:.4f} sum_s {t1 - t0:.4f} mean_s {t2 - t1:.4f} max_s {t3 - t2:.4f} first_load_s {first_load:.4f}")
