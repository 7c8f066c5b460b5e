#!/usr/bin/env python3
"""One CSV row of timings from a hyperbatch output's provenance.

  scaling_summary.py --header [KEY ...]
  scaling_summary.py OUT.hspy [KEY=VALUE ...]

The row is the KEY=VALUE labels (e.g. study=strong ranks=4), then from
/Experiments/<first result>/original_metadata/hyperbatch: ranks, blocks,
slurm_job_id, input_size (bytes on disk), wall_time_s, bytes_read (uncompressed)
and timing/<phase>/{min_s, median_s, max_s, bytes} for open, read, kernels,
reduce and write.  Used by jobs/scaling.sbatch and tests/bench/scaling.sh.
"""
import sys

PHASES = ["open", "read", "kernels", "reduce", "write"]
FIELDS = ["ranks", "blocks", "slurm_job_id", "input_size", "wall_time_s", "bytes_read"] + [
    f"{p}_{s}" for p in PHASES for s in ("min_s", "median_s", "max_s", "bytes")]


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main(argv):
    if argv and argv[0] == "--header":
        print(",".join(argv[1:] + FIELDS))
        return
    import h5py
    path, labels = argv[0], [a.split("=", 1)[1] for a in argv[1:]]
    with h5py.File(path, "r") as f:
        first = sorted(f["Experiments"])[0]
        a = f["Experiments"][first]["original_metadata/hyperbatch"]
        row = [text(a.attrs[k]) for k in FIELDS[:6]]
        for p in PHASES:
            t = a["timing"][p].attrs
            row += [text(t["min_s"]), text(t["median_s"]), text(t["max_s"]), text(t["bytes"])]
    print(",".join(labels + row))


if __name__ == "__main__":
    main(sys.argv[1:])
