"""Compare every /Experiments/*/data of several hyperbatch outputs bit for bit.
usage: compare_outputs.py A.hspy B.hspy [C.hspy ...]"""
import sys

import h5py
import numpy as np


def results(path):
    with h5py.File(path, "r") as f:
        return {k: f["Experiments"][k]["data"][()] for k in f["Experiments"]}


ref_path, others = sys.argv[1], sys.argv[2:]
ref = results(ref_path)
bad = 0
for path in others:
    got = results(path)
    if sorted(got) != sorted(ref):
        print(f"FAIL {path}: results {sorted(got)} != {sorted(ref)}")
        bad += 1
        continue
    for k, a in ref.items():
        b = got[k]
        same = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        if not same:
            diff = np.nanmax(np.abs(a.astype(float) - b.astype(float))) if a.shape == b.shape else "shape"
            print(f"FAIL {path}:{k} differs from {ref_path} ({a.dtype}{a.shape} vs {b.dtype}{b.shape}, max diff {diff})")
            bad += 1
print(f"compared {len(ref)} results across {len(others) + 1} files: {'bit-identical' if not bad else f'{bad} differ'}")
sys.exit(1 if bad else 0)
