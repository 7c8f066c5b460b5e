"""Every YAML example in README.md and docs/*.md passes `hyperbatch validate`
as typed.

A whole job (a block with `version: 1`) runs in a folder of its own, with
the input it names made there: a synthetic 4D-STEM scan (128 x 128
patterns) for an .hspy file, the same array under the named dataset for
a plain HDF5 file. A fragment (`kernels:` and `preprocess:` lists) goes
into a job on a synthetic 4D-STEM scan or EELS spectrum image; a fragment
that mixes ops for both (an axis of a spectrum and of an image) passes when
each of its kernels validates on one of them. Files the examples name
(masks.h5, fft.wisdom) are made first. The shell lines of the README are
run by scripts/demo and scripts/test themselves.

usage: /usr/bin/python3 docs_examples.py path/to/hyperbatch SOURCE_ROOT"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hbcheck import ENV, check, finish  # noqa: E402

HB, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def validate(job_path):
    p = subprocess.run([HB, "validate", job_path], capture_output=True, text=True, env=ENV, timeout=120)
    return p.returncode, p.stderr.strip()


def make_inputs(tmp):
    scan, si = os.path.join(tmp, "scan.hspy"), os.path.join(tmp, "si.hspy")
    subprocess.run([HB, "synth", "4dstem", scan, "--shape", "8,8,128,128"], check=True, capture_output=True, env=ENV)
    subprocess.run([HB, "synth", "eels", si], check=True, capture_output=True, env=ENV)
    with h5py.File(scan, "r") as f:
        name = next(iter(f["Experiments"]))
        data = f["Experiments"][name]["data"][()]
    with h5py.File(os.path.join(tmp, "masks.h5"), "w") as f:  # decomposition.md's signal mask, for the spectra
        dead = np.zeros(512, np.uint8)
        dead[[7, 300]] = 1  # nonzero: excluded
        f["dead_channels"] = dead
    subprocess.run(["fftw-wisdom", "-n", "-o", os.path.join(tmp, "fft.wisdom"), "rof128x128"], check=True,
                   capture_output=True)
    return scan, si, data


def whole_job(tmp, i, text, scan, data):
    """Its own folder, with the input it names."""
    where = os.path.join(tmp, f"job{i}")
    os.makedirs(where)
    inp = (yaml.safe_load(text) or {}).get("input", {})
    src = os.path.join(where, inp.get("file", "missing"))
    os.makedirs(os.path.dirname(src), exist_ok=True)
    if src.endswith(".hspy"):
        shutil.copy(scan, src)
    else:
        with h5py.File(src, "w") as f:
            f[inp.get("dataset", "/data")] = data
    path = os.path.join(where, "job.yaml")
    with open(path, "w") as f:
        f.write(text)
    return validate(path)


def fragment_job(tmp, i, steps, src):
    path = os.path.join(tmp, f"frag{i}.yaml")
    job = {"version": 1, "input": {"file": src}, "output": {"file": os.path.join(tmp, f"out{i}/r.hspy")}}
    job.update(steps)
    with open(path, "w") as f:
        yaml.safe_dump(job, f, sort_keys=False)
    return validate(path)


def main(tmp):
    scan, si, data = make_inputs(tmp)
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    n = 0
    for doc in files:
        with open(doc) as f:
            text = f.read()
        for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
            n += 1
            name = f"{os.path.relpath(doc, ROOT)} example {n} ({block.strip().splitlines()[0][:40]})"
            if re.search(r"^version: 1", block, re.M):
                rc, err = whole_job(tmp, n, block, scan, data)
                check(rc == 0, f"{name}: validates as typed (exit {rc}) {err[-300:]}")
                continue
            steps = yaml.safe_load(block)  # a fragment: must be YAML of steps
            ok = isinstance(steps, dict) and set(steps) <= {"kernels", "preprocess"}
            if not check(ok, f"{name}: a kernels/preprocess fragment"):
                continue
            tries = [fragment_job(tmp, n, steps, s) for s in (scan, si)]
            if any(rc == 0 for rc, _ in tries):
                check(True, f"{name}: validates as typed")
                continue
            # several kinds of data in one example: each kernel on one of them
            bad = []
            for k, kernel in enumerate(steps.get("kernels", [])):
                one = dict(steps, kernels=[kernel])
                if not any(fragment_job(tmp, f"{n}_{k}_{j}", one, s)[0] == 0 for j, s in enumerate((scan, si))):
                    bad.append(kernel.get("name"))
            check(not bad and steps.get("kernels"),
                  f"{name}: each kernel validates on a 4D-STEM scan or a spectrum image"
                  + (f"; not {bad}: {tries[0][1][-200:]} / {tries[1][1][-200:]}" if bad else ""))
    check(n >= 10, f"{n} YAML examples found")


with tempfile.TemporaryDirectory() as tmp:
    os.chdir(tmp)
    main(tmp)
finish("docs_examples")
