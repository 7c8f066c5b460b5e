"""hb_np_argsort (src/core/npsort.c) against numpy's own np.argsort(-a), the
order skimage's peak_local_max walks its candidates in: the same
permutation, ties included, for every real dtype, on arrays of 1 to 2000
values with heavy ties, the values where negation wraps or floats compare
specially (0, INT_MIN, NaN, -0.0, inf), and inputs made to exhaust the
introsort's depth budget so that its heapsort runs.

usage: /usr/bin/python3 test_argsort.py path/to/argsort_np"""
import subprocess
import sys

import numpy as np

HARNESS = sys.argv[1]
CHECKS, FAILS = [0], []
DTYPES = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64")


def check(cond, what):
    CHECKS[0] += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def harness(dtype, arrays):
    """[(heapsorted partitions, permutation)] of the C argsort of -a, per a."""
    blob = b"".join(np.uint64(len(a)).tobytes() + np.ascontiguousarray(a, dtype).tobytes() for a in arrays)
    p = subprocess.run([HARNESS, dtype], input=blob, capture_output=True, check=True)
    out, pos, res = np.frombuffer(p.stdout, np.uint64), 0, []
    for a in arrays:
        res.append((int(out[pos]), out[pos + 1:pos + 1 + len(a)].astype(np.int64)))
        pos += 1 + len(a)
    assert pos == len(out), "the harness wrote more than asked"
    return res


def numpy_order(a):
    with np.errstate(all="ignore"):
        return np.argsort(-a)  # as skimage: the default kind, negated in a's dtype


def compare(dtype, family, arrays):
    """One check: every array's C permutation is numpy's. Returns the
    heapsorted partitions counted over the arrays."""
    res = harness(dtype, arrays)
    bad = [i for i, (a, (_, perm)) in enumerate(zip(arrays, res)) if not np.array_equal(perm, numpy_order(a))]
    sizes = [len(a) for a in arrays]
    detail = ""
    if bad:
        a = arrays[bad[0]]
        perm, want = res[bad[0]][1], numpy_order(a)
        k = int(np.argmax(perm != want)) if len(perm) == len(want) else 0
        detail = f"; first: n={len(a)}, position {k}: C {perm[k:k + 4].tolist()}, numpy {want[k:k + 4].tolist()}"
    check(not bad, f"{dtype} {family}: {len(arrays) - len(bad)} of {len(arrays)} arrays (n {min(sizes)}..{max(sizes)}) "
          f"in np.argsort(-a)'s order" + detail)
    return sum(h for h, _ in res)


def random_arrays(rng, dtype):
    """Sizes 1..300 each, then 120 sizes up to 2000; mostly 2 to 6 distinct
    values (ties everywhere), some wide."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.5, -1.5, 65535.0], dtype)
        wide = lambda n: rng.normal(0, 100, n).astype(dtype)
    else:
        info = np.iinfo(dt)
        special = np.array(sorted({info.min, info.min + 1, 0, 1, info.max, info.max // 2, -1 if info.min else 2}), dtype)
        wide = lambda n: rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    sizes = list(range(1, 301)) + sorted(rng.integers(301, 2001, 120).tolist())
    arrays = []
    for n in sizes:
        kind = rng.integers(0, 4)
        if kind == 3:
            arrays.append(wide(n))
        else:
            alphabet = rng.choice(special, size=rng.integers(2, 7))
            arrays.append(alphabet[rng.integers(0, len(alphabet), n)])
    return arrays


def adversary(n, rng, ties):
    """McIlroy's antiquicksort against the introsort (a Python model of its
    comparisons, run until its first heapsort): values that make every
    median-of-3 pivot a poor one, so the depth budget runs out. Values not
    yet pinned down ("gas") were only ever found greater than pinned ones:
    any values above those take the same path, here `ties` distinct ones,
    so that the heapsort meets equal children larger than what it sifts."""
    gas, val, solid, cand = n, [n] * n, [0], [0]

    def less(x, y):
        if val[x] == gas and val[y] == gas:
            z = x if x == cand[0] else y
            val[z], solid[0] = solid[0], solid[0] + 1
        if val[x] == gas:
            cand[0] = x
        elif val[y] == gas:
            cand[0] = y
        return val[x] < val[y]

    idx, stack, lo, hi = list(range(n)), [], 0, n - 1
    depth = 2 * (n.bit_length() - 1)
    while True:
        if depth < 0:
            break  # numpy heapsorts idx[lo..hi] here
        while hi - lo >= 16:
            mid = lo + ((hi - lo) >> 1)
            for a, b in ((mid, lo), (hi, mid), (mid, lo)):
                if less(idx[a], idx[b]):
                    idx[a], idx[b] = idx[b], idx[a]
            p, i, j = idx[mid], lo, hi - 1
            idx[mid], idx[j] = idx[j], idx[mid]
            while True:
                i += 1
                while less(idx[i], p):
                    i += 1
                j -= 1
                while less(p, idx[j]):
                    j -= 1
                if i >= j:
                    break
                idx[i], idx[j] = idx[j], idx[i]
            idx[i], idx[hi - 1] = idx[hi - 1], idx[i]
            depth -= 1
            if i - lo < hi - i:
                stack.append((i + 1, hi, depth))
                hi = i - 1
            else:
                stack.append((lo, i - 1, depth))
                lo = i + 1
        for i in range(lo + 1, hi + 1):
            e, j = idx[i], i
            while j > lo and less(e, idx[j - 1]):
                idx[j] = idx[j - 1]
                j -= 1
            idx[j] = e
        if not stack:
            break
        lo, hi, depth = stack.pop()
    val = np.array(val)
    val[val == gas] += rng.integers(0, ties, int((val == gas).sum()))
    return val


def main():
    rng = np.random.default_rng(7)
    for dtype in DTYPES:
        compare(dtype, "random, heavy ties", random_arrays(rng, dtype))
    # -a is the adversary's values: the harness sorts what numpy sorts
    killers = [adversary(n, rng, ties) for n in (40, 63, 100, 257, 1000, 2000) for ties in (1, 2, 3)]
    for dtype in ("int32", "float64"):
        heaps = compare(dtype, "adversarial", [(-v).astype(dtype) for v in killers])
        check(heaps >= len(killers), f"{dtype} adversarial: the heapsort ran ({heaps} partitions over "
              f"{len(killers)} arrays)")
    print(f"test_argsort: {CHECKS[0]} checks, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)


main()
