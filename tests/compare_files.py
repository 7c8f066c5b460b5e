"""Compare two hyperbatch files object by object: every group and dataset,
every attribute, each dataset's dtype, shape, chunks, filters and values
(variable-length lists element by element).  Only the provenance that
describes how a run went, not what it computed, may differ (VARIES).
usage: compare_files.py A.hspy B.hspy   (exit 1 and one line per difference)"""
import sys

import h5py
import numpy as np

# original_metadata/hyperbatch keys that legitimately differ between an
# uninterrupted run and one stopped and resumed on other rank counts
VARIES = {"wall_time_s", "ranks", "streamed_ranks", "blocks_moved", "checkpoints", "bytes_read"}


def varies(path):
    if "original_metadata/hyperbatch" not in path:
        return False
    tail = path.split("original_metadata/hyperbatch", 1)[1]
    # per-phase seconds, and the HB_* settings of the run that finished
    return tail.startswith("/timing") or "_environment" in tail or tail.lstrip("@/").split("@")[-1] in VARIES


def value(v):
    return v if isinstance(v, (str, bytes)) else (np.asarray(v).dtype.str, np.asarray(v).tobytes())


def objects(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for k, v in obj.attrs.items():
                out[f"{name}@{k}"] = value(v)
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                if obj.dtype.kind == "O":  # ragged: one array per position
                    data = [(np.asarray(x).dtype.str, np.asarray(x).tobytes()) for x in np.asarray(data).ravel()]
                else:
                    data = np.asarray(data).tobytes()
                out[name] = (obj.dtype.str, obj.shape, obj.chunks, obj.compression, obj.compression_opts,
                             obj.shuffle, data)
            else:
                out[name] = "group"
        visit("", f)
        f.visititems(visit)
    return out


a, b = objects(sys.argv[1]), objects(sys.argv[2])
bad = [k for k in sorted(set(a) | set(b)) if not varies(k) and a.get(k) != b.get(k)]
for k in bad:
    print(f"DIFF {k}: {str(a.get(k))[:70]} | {str(b.get(k))[:70]}")
print(f"{sys.argv[2]}: {len(a)} objects and attributes against {sys.argv[1]}, {len(bad)} differ")
sys.exit(1 if bad else 0)
