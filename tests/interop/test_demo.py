"""The demo job on the built-in synthetic scan: the output loads in HyperSpy
without warnings and shows the structure the generator put in (its ground
truth is in the scan's metadata): bright-field is bright in vacuum, the
annular image is dark in vacuum and follows the thickness, a dark field on a
Bragg disk shows the grain, the mean pattern shows the Bragg disks, and the
hot pixels are filtered.

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
    pngs = [line.split("preview ", 1)[1] for line in p.stdout.splitlines() if " preview " in line]
    check(len(pngs) == 6, f"it prints 6 previews: {pngs}")
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


with tempfile.TemporaryDirectory() as tmp:
    main(tmp)
finish("test_demo")
