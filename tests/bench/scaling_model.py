#!/usr/bin/env python3
"""A performance model for hyperbatch, calibrated on tests/bench/scaling.sh's
measurements, projecting the run time to 8-64 nodes (docs/scaling.md).

  scaling_model.py scaling.csv [--pfs GB/s ...] [--node GB/s] [--ranks-per-node R]

Per-phase costs are taken from the 1-rank strong-scaling runs (best of the
repetitions, provenance timings):
  r_k    kernel rate per core   = raw bytes / kernels time
  r_inf  read + inflate rate per core (gzip input) = raw bytes / read time
  r_cp   read rate per core (uncompressed, page cache) = raw bytes / read time
  t0     fixed costs: open + write (+ launch, measured outside)

Model for P = N x R ranks on N nodes, each rank with 2 cores (a reader thread
and a kernel thread, --cpus-per-task=2), reading S_disk bytes that decode to
S_raw bytes:
  T_cpu = max(a, b) + (1 - ov) * min(a, b),  a = S_raw / (P r_dec), b = S_raw / (P r_k)
          reader and kernel threads overlap by the fraction ov measured at 1 rank
  T_io  = S_disk / min(N * b_node, B_pfs)      the file system's share
  T     = t_launch(N) + t_open + max(T_cpu, T_io) + T_reduce(P) + t_write
  T_reduce(P) = ceil(log2 P) * k * (alpha + S_sig / beta + S_sig / m)
          a binomial tree over the ranks: each round passes k tree partials and folds them
Prints the calibration and a Markdown table of projections.
"""
import argparse
import csv
import math

ap = argparse.ArgumentParser()
ap.add_argument("csv")
ap.add_argument("--pfs", type=float, nargs="+", default=[25.0, 100.0], help="aggregate PFS read bandwidth, GB/s")
ap.add_argument("--node", type=float, default=6 * 1.073741824, help="per-node read bandwidth, GB/s (6 GiB/s)")
ap.add_argument("--ranks-per-node", type=int, default=16)
ap.add_argument("--raw-gib", type=float, nargs="+", default=[64.0, 1024.0],
                help="uncompressed sizes of the projected scans, GiB")
ap.add_argument("--ratio", type=float, default=None, help="gzip ratio (default: the measured input's)")
args = ap.parse_args()

rows = list(csv.DictReader(open(args.csv)))


def best(study, comp, ranks):
    rs = [r for r in rows if r["study"] == study and r["compression"] == comp and int(r["ranks"]) == ranks]
    return min(rs, key=lambda r: float(r["wall_s"])) if rs else None


g1, u1 = best("strong", "gzip", 1), best("strong", "none", 1)
raw = float(g1["input_bytes"])
r_k = raw / min(float(g1["kernels_median_s"]), float(u1["kernels_median_s"]))
r_inf = raw / float(g1["read_median_s"])
r_cp = raw / float(u1["read_median_s"])
ratio = args.ratio or raw / float(g1["file_bytes"])
def overlap(r):
    """How much of the shorter of read and kernels hid behind the longer one at 1 rank (0..1)."""
    t_read, t_kern = float(r["read_median_s"]), float(r["kernels_median_s"])
    t_loop = float(r["wall_s"]) - float(r["open_max_s"]) - float(r["write_max_s"])
    return min(1.0, max(0.0, (t_read + t_kern - t_loop) / min(t_read, t_kern)))


ov = {"gzip": overlap(g1), "raw": overlap(u1)}
t_open = max(float(g1["open_max_s"]), float(u1["open_max_s"]))
t_write = max(float(g1["write_max_s"]), float(u1["write_max_s"]))
t_launch1 = min(float(g1["launch_wall_s"]) - float(g1["wall_s"]), float(u1["launch_wall_s"]) - float(u1["wall_s"]))
print("Calibration (1 rank, best of the repetitions):")
print(f"- kernel rate per core r_k = {r_k / 1e9:.2f} GB/s of patterns (the 5-kernel job)")
print(f"- gzip read + inflate per core r_inf = {r_inf / 1e9:.2f} GB/s of patterns (ratio {ratio:.1f}:1)")
print(f"- uncompressed read per core (page cache) r_cp = {r_cp / 1e9:.2f} GB/s")
print(f"- overlap of read and kernels: {ov['gzip']:.0%} (gzip), {ov['raw']:.0%} (uncompressed) of the shorter phase hidden")
print(f"- open {t_open * 1e3:.0f} ms, write {t_write * 1e3:.0f} ms, mpirun + MPI_Init {t_launch1:.2f} s")
print()

# Assumptions for the cluster (stated in docs/scaling.md)
R = args.ranks_per_node
alpha, beta, mem = 2e-6, 10e9, 10e9       # interconnect latency, bandwidth; memory bandwidth for the fold
k_tree = 2                                # tree partials per rank sent to rank 0
sig_bytes = 256 * 256 * (8 + 2)           # mean (float64) + max (uint16) of a 256 x 256 detector
t_open_c = 0.5                            # collective open + create on a busy Lustre MDS
t_launch = lambda n: 1.0 + 0.05 * n       # srun of N nodes (PMIx), seconds
NODES = (1, 8, 16, 32, 64)


def project(S_raw, comp, B, n):
    P = n * R
    S_disk = S_raw if comp == "raw" else S_raw / ratio
    r_dec = r_cp if comp == "raw" else r_inf
    a, b = S_raw / (P * r_dec), S_raw / (P * r_k)
    t_cpu = max(a, b) + (1 - ov[comp]) * min(a, b)   # reader and kernel threads, partly overlapped
    t_io = S_disk / (min(n * args.node, B) * 1e9)
    t_red = math.ceil(math.log2(P)) * k_tree * (alpha + sig_bytes / beta + sig_bytes / mem) if P > 1 else 0.0
    t = t_launch(n) + t_open_c + max(t_cpu, t_io) + t_red + t_write
    return t, t_cpu, t_io, t_red


print(f"Projection: {R} ranks per node, 2 cores each; {args.node:.1f} GB/s per node; uint16 scans of 256 x 256 patterns")
print()
print("| scan | on disk | PFS GB/s | " + " | ".join(f"{n} node{'s' if n > 1 else ''}" for n in NODES) + " |")
print("|---|---|---|" + "---|" * len(NODES))
for gib in args.raw_gib:
    S_raw = gib * 2**30
    for comp in ("raw", "gzip"):
        for B in args.pfs:
            cells = []
            for n in NODES:
                t, t_cpu, t_io, _ = project(S_raw, comp, B, n)
                cells.append(f"{t:.1f} s ({'I/O' if t_io > t_cpu else 'CPU'}, {S_raw / t / 1e9:.0f} GB/s)")
            disk = S_raw / (1 if comp == "raw" else ratio) / 2**30
            print(f"| {gib:.0f} GiB {comp} | {disk:.0f} GiB | {B:.0f} | " + " | ".join(cells) + " |")
print()
print("Reduction (a binomial tree over the ranks, log2(P) rounds of k partials), per the model:")
print("| ranks | " + " | ".join(str(n * R) for n in NODES) + " |")
print("|---|" + "---|" * len(NODES))
print("| T_reduce s | " + " | ".join(f"{project(2**30, 'raw', 100, n)[3]:.3f}" for n in NODES) + " |")
