"""The demo job on the built-in synthetic scan: the output loads in HyperSpy
without warnings and shows the structure the generator put in (its ground
truth is in the scan's metadata): bright-field is bright in vacuum, the
annular image is dark in vacuum and follows the thickness, a dark field on a
Bragg disk shows the grain, the mean pattern shows the Bragg disks, the
hot pixels are filtered, the standard-deviation pattern is numpy's, the peaks
of the crystal's patterns are on its Bragg disks, and the binned scans (2x2
in the detector; 4x4 in the positions too) hold every count.

usage: /usr/bin/python3 test_demo.py path/to/hyperbatch SOURCE_ROOT"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hbcheck import ENV, by_title, check, finish, hs, load_quietly, warm_up  # noqa: E402

HB, ROOT = os.path.abspath(sys.argv[1]), sys.argv[2]


def main(tmp):
    scan = os.path.join(tmp, "scan.hspy")
    out = os.path.join(tmp, "results", "demo.hspy")
    subprocess.run([HB, "synth", "4dstem", scan], check=True, capture_output=True)
    p = subprocess.run(["mpirun", "-q", "-n", "2", HB, "run", os.path.join(ROOT, "configs", "demo.yaml"),
                        "--set", f"input.file={scan}", "--set", f"output.file={out}"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    print(p.stdout)
    check(p.returncode == 0, f"demo job runs on 2 ranks (exit {p.returncode}) {p.stderr[-400:]}")
    check(f"wrote {out}" in p.stdout, "it prints the output path")
    ragged = out[:-len(".hspy")] + ".ragged.hspy"
    check(f"wrote {ragged}" in p.stdout, "it prints the ragged companion's path")
    pngs = [line.split("preview ", 1)[1] for line in p.stdout.splitlines() if " preview " in line]
    # one per 2-D image result: the three detectors, total, and the three patterns
    check(len(pngs) == 7, f"it prints 7 previews: {pngs}")
    for png in pngs:
        with open(png, "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{os.path.basename(png)} is a PNG")

    warm_up(tmp)
    res = by_title(load_quietly(out))
    truth = hs.load(scan, lazy=True).metadata.Synthetic
    vac = np.asarray(truth.vacuum_mask).astype(bool)
    thick = np.asarray(truth.thickness)
    bf, adf = res["bf"].data, res["adf"].data
    check(bf[vac].mean() > 1.2 * bf[~vac].mean(), f"BF brighter in vacuum ({bf[vac].mean():.0f} vs {bf[~vac].mean():.0f})")
    check(adf[vac].mean() < 0.1 * adf[~vac].mean(), f"ADF dark in vacuum ({adf[vac].mean():.0f} vs {adf[~vac].mean():.0f})")
    r = np.corrcoef(adf[~vac], thick[~vac])[0, 1]
    check(r > 0.8, f"ADF follows thickness in the sample (r = {r:.3f})")
    crystal = np.asarray(truth.crystal_mask).astype(bool)
    vdf = res["vdf"].data
    sample = ~vac & ~crystal
    check(vdf[crystal].mean() > 2 * vdf[sample].mean(),
          f"Bragg-disk dark field lights up the grain ({vdf[crystal].mean():.0f} vs {vdf[sample].mean():.0f})")
    mdp = res["mean_dp"].data
    cx, cy, g = truth.centre_x_px, truth.centre_y_px, truth.lattice_spacing_px
    disk = mdp[int(round(cy)), int(round(cx + g))]
    between = mdp[int(round(cy + g / 2)), int(round(cx + g / 2))]
    check(disk > 2 * between, f"mean pattern shows a Bragg disk at +g ({disk:.2f} vs {between:.2f} between disks)")
    mx = res["max_dp"].data.astype(float)
    hx, hy = np.asarray(truth.hot_pixels_x, int), np.asarray(truth.hot_pixels_y, int)
    check(np.all(mx[hy, hx] < truth.hot_pixel_counts / 4),
          f"hot pixels filtered out of the max pattern ({mx[hy, hx]})")
    total = res["total"].data
    check(np.all(total > 0.5 * truth.counts_per_pattern), "every pattern holds its counts")

    raw = hs.load(scan).data
    std = np.std(raw, axis=(0, 1), dtype=np.float64)
    # the filter also takes out single noise counts far from the beam (above
    # 8 where the neighbours are 0): about 2% of the pixels differ here
    same = np.isclose(res["std_dp"].data, std, rtol=1e-12, atol=0)
    check(same.mean() > 0.95, f"std_dp is numpy's std over the scan on {same.mean():.1%} of the pixels")
    check(np.all(res["std_dp"].data[hy, hx] < std[hy, hx] / 4), "the hot pixels are filtered out of std_dp")

    binned = res["binned"]
    check(binned.data.shape == (64, 64, 64, 64), f"binned is the scan 2x2-binned: {binned.data.shape}")
    check(np.array_equal(binned.data.sum(axis=(2, 3), dtype=np.uint64), total),
          "binned holds every count of every pattern (its sums equal total)")
    sig = binned.axes_manager.signal_axes
    check(all(abs(a.scale - 2 * b.scale) < 1e-12 for a, b in zip(sig, hs.load(scan, lazy=True).axes_manager.signal_axes)),
          "binned's detector axes have twice the scale")

    # overview: the scan binned 4x4 in its positions too (a binned scan)
    ov = res["overview"]
    check(ov.data.shape == (16, 16, 64, 64), f"overview is the scan 4x4-binned: {ov.data.shape}")
    check(np.array_equal(ov.data.sum(axis=(2, 3), dtype=np.uint64),
                         total.astype(np.uint64).reshape(16, 4, 16, 4).sum(axis=(1, 3))),
          "overview holds every count of its 16 patterns (its sums equal total's over each bin)")
    nav = hs.load(scan, lazy=True).axes_manager.navigation_axes
    check(all(abs(a.scale - 4 * b.scale) < 1e-12 and abs(a.offset - (b.offset + 1.5 * b.scale)) < 1e-12
              for a, b in zip(ov.axes_manager.navigation_axes, nav)),
          "overview's scan axes: 4 times the scale, offset at the first bin's centre (as HyperSpy's rebin)")

    # region: s.inav[8:40:2, 16:48:2] of the filtered patterns
    reg = res["region"]
    ref = hs.load(scan, lazy=True).inav[8:40:2, 16:48:2]
    check(reg.data.shape == (16, 16, 128, 128) and
          np.array_equal(reg.data.sum(axis=(2, 3), dtype=np.uint64), total[16:48:2, 8:40:2].astype(np.uint64)),
          f"region holds the patterns of inav[8:40:2, 16:48:2] (its sums equal total's there): {reg.data.shape}")
    check(all(abs(a.scale - b.scale) < 1e-12 and abs(a.offset - b.offset) < 1e-12
              for a, b in zip(reg.axes_manager.navigation_axes, ref.axes_manager.navigation_axes)),
          "region's scan axes are inav's (offset at its first position, twice the scale)")

    # find_peaks: the crystal's patterns have peaks on (nearly) all 8 Bragg
    # disks, the vacuum's on none (the direct beam is not a Bragg disk)
    peaks = load_quietly(ragged)[0].data
    bx, by = np.asarray(truth.bragg_disks_x_px), np.asarray(truth.bragg_disks_y_px)
    sx, sy = np.asarray(truth.beam_shift_x), np.asarray(truth.beam_shift_y)

    def disks_found(i, j):
        pk = np.asarray(peaks[i, j]).reshape(-1, 2)
        if not len(pk):
            return 0
        cx, cy = truth.centre_x_px + sx[i, j], truth.centre_y_px + sy[i, j]
        return sum(np.hypot(pk[:, 1] - cx - x, pk[:, 0] - cy - y).min() <= truth.disk_radius_px for x, y in zip(bx, by))

    in_crystal = np.mean([disks_found(i, j) for i, j in np.argwhere(crystal)])
    in_vacuum = np.mean([disks_found(i, j) for i, j in np.argwhere(vac)])
    check(in_crystal > 6 and in_vacuum < 0.5,
          f"peaks on the Bragg disks: {in_crystal:.2f} of 8 per crystal pattern, {in_vacuum:.2f} in vacuum")


with tempfile.TemporaryDirectory() as tmp:
    main(tmp)
finish("test_demo")
