"""decomposition with learning_results: true, against HyperSpy 1.7.3's own
decomposition() on the same file (docs/decomposition.md "HyperSpy's
learning_results"): hs.load(out, lazy=True) gives the signal `<name>`, the
input through an external link, on which get_decomposition_factors(),
get_decomposition_model(k), plot_explained_variance_ratio() and, with BSS,
get_bss_factors() work as after s.decomposition(); at 1, 2 and 3 ranks
(learning_results equal to rounding, 1e-9 relative,
as every decomposition output: docs/decomposition.md). Exact SVD (centred on the navigation
too), NMF; an output copied beside its input still loads; refusals at
validate (preprocess steps, centre: signal, a contiguous input).

usage: /usr/bin/python3 test_learning_results.py path/to/hyperbatch"""
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import oracle  # noqa: E402
from oracle import check, hs  # noqa: E402
import h5py  # noqa: E402

HB = os.path.abspath(sys.argv[1])


def cos_match(a, b):
    """|cos| of each column of a with the same column of b (sign-free)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs((a * b).sum(0)) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))


def linked(path, name):
    sigs = oracle.load_quietly(path, lazy=True)
    return {s.metadata.General.title: s for s in sigs}.get(name)


def run(tmp, tag, src, spec, ranks=(1, 2, 3)):
    outs = {}
    for n in ranks:
        job = oracle.write_job(os.path.join(tmp, f"{tag}{n}.yaml"), src, {"pca": spec},
                               output_file=os.path.join(tmp, f"{tag}{n}.hspy"), run={"block": 4})
        p = oracle.run_hyperbatch(HB, job, n)
        if check(p.returncode == 0, f"{tag}: runs at {n} rank{'s' * (n > 1)} (exit {p.returncode})"):
            outs[n] = os.path.join(tmp, f"{tag}{n}.hspy")
        else:
            print(p.stderr[-800:])
    return outs


def same_learning_results(tag, outs):
    ref = outs.get(1)
    for n, path in outs.items():
        if n == 1 or not ref:
            continue
        with h5py.File(ref, "r") as a, h5py.File(path, "r") as b:
            la, lb = a["Experiments/pca/learning_results"], b["Experiments/pca/learning_results"]
            same = sorted(la.keys()) == sorted(lb.keys()) and all(
                np.allclose(lb[k][()], la[k][()], rtol=1e-9, atol=1e-9 * np.abs(la[k][()]).max()) for k in la)
            same = same and dict(la.attrs) == dict(lb.attrs)
        check(same, f"{tag}: learning_results at {n} ranks == 1 rank, to 1e-9 relative")


def test_svd(tmp, src, data):
    # the data has rank 3: a 4th component would be noise, which no two solvers share
    spec = {"op": "decomposition", "components": 3, "svd_solver": "exact", "bss": True, "learning_results": True}
    outs = run(tmp, "svd", src, spec)
    ref = hs.load(src)
    ref.decomposition(output_dimension=3, svd_solver="full", print_info=False)
    ref.blind_source_separation(3, print_info=False)
    scale = float(np.abs(data).max())
    for n, path in outs.items():
        s = linked(path, "pca")
        if not check(s is not None and s._lazy, f"svd at {n}: hs.load(out, lazy=True) has the lazy signal 'pca'"):
            continue
        check(s.data.shape == data.shape and np.array_equal(np.asarray(s.data), data),
              f"svd at {n}: its data is the input's (through the link)")
        check(s.learning_results.decomposition_algorithm == "SVD" and s.learning_results.output_dimension == 3,
              f"svd at {n}: decomposition_algorithm SVD, output_dimension 3")
        f = s.get_decomposition_factors()
        check(f.axes_manager.navigation_shape == (3,) and
              np.all(cos_match(np.asarray(f.data).T, ref.learning_results.factors[:, :3]) > 0.999999),
              f"svd at {n}: get_decomposition_factors() == HyperSpy's (|cos| > 0.999999)")
        for k in (1, 2, 3):
            m, rm = s.get_decomposition_model(k), ref.get_decomposition_model(k)
            err = float(np.abs(np.asarray(m.data) - rm.data).max())
            check(m.data.shape == data.shape and err < 1e-5 * scale,
                  f"svd at {n}: get_decomposition_model({k}) == HyperSpy's (max |diff| {err:.3g}, scale {scale:.3g})")
        evr = np.asarray(s.learning_results.explained_variance_ratio)
        check(np.allclose(evr, ref.learning_results.explained_variance_ratio[:3] /
                          ref.learning_results.explained_variance_ratio[:3].sum(), rtol=1e-6),
              f"svd at {n}: explained_variance_ratio as HyperSpy computes it for 3 components")
        try:
            s.plot_explained_variance_ratio()
            ok = True
        except Exception as e:  # noqa: BLE001 - any failure of HyperSpy's method is the finding
            ok, why = False, e
        check(ok, f"svd at {n}: plot_explained_variance_ratio() {'' if ok else why}")
        b = s.get_bss_factors()
        with h5py.File(path, "r") as h:
            own = h["Experiments/pca_bss_factors/data"][()]
        check(np.array_equal(np.asarray(b.data), own), f"svd at {n}: get_bss_factors() == the output's pca_bss_factors")
        best = np.max(cos_match_all(np.asarray(b.data).T, ref.learning_results.bss_factors), axis=1)
        check(b.axes_manager.navigation_shape == (3,) and np.all(best > 0.999),
              f"svd at {n}: get_bss_factors() matches HyperSpy's components (best |cos| {np.round(best, 5)}, "
              "any order)")
    same_learning_results("svd", outs)
    # centred on the navigation: HyperSpy adds the mean pattern back
    outs = run(tmp, "svdc", src, dict(spec, centre="navigation", bss=False), ranks=(2,))
    ref = hs.load(src)
    ref.decomposition(output_dimension=3, svd_solver="full", centre="navigation", print_info=False)
    for n, path in outs.items():
        s = linked(path, "pca")
        m, rm = s.get_decomposition_model(2), ref.get_decomposition_model(2)
        err = float(np.abs(np.asarray(m.data) - rm.data).max())
        check(err < 1e-5 * scale, f"svd centre navigation at {n}: get_decomposition_model(2) == HyperSpy's "
              f"(the mean added back; max |diff| {err:.3g})")
    # the output copied elsewhere with its input beside it still loads
    path = outs.get(2)
    if path:
        away = os.path.join(tmp, "away")
        os.makedirs(away, exist_ok=True)
        shutil.copy(path, os.path.join(away, "out.hspy"))
        shutil.copy(src, os.path.join(away, os.path.basename(src)))
        moved = src + ".moved"
        os.rename(src, moved)
        try:
            s = linked(os.path.join(away, "out.hspy"), "pca")
            check(s is not None and np.array_equal(np.asarray(s.data), data),
                  "an output copied with its input into another folder: the link finds the input beside it")
        finally:
            os.rename(moved, src)


def cos_match_all(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a.T @ b) / np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0))


def test_nmf(tmp, src, data):
    outs = run(tmp, "nmf", src, {"op": "decomposition", "algorithm": "nmf", "components": 3, "learning_results": True},
               ranks=(1, 3))
    for n, path in outs.items():
        s = linked(path, "pca")
        with h5py.File(path, "r") as f:
            H, W = f["Experiments/pca_factors/data"][()], f["Experiments/pca_loadings/data"][()]
        want = (W.reshape(3, -1).T @ H.reshape(3, -1)).reshape(data.shape)
        m = s.get_decomposition_model(3)
        check(s.learning_results.decomposition_algorithm == "NMF" and
              np.allclose(np.asarray(m.data), want, rtol=1e-12, atol=1e-9),
              f"nmf at {n}: get_decomposition_model(3) == the output's loadings x factors")
    same_learning_results("nmf", outs)


def test_refusals(tmp, src):
    contiguous = os.path.join(tmp, "contiguous.h5")
    with h5py.File(contiguous, "w") as f:
        f["data"] = np.ones((4, 5, 6), np.float32)
    cases = [
        ("pre", src, {"op": "decomposition", "components": 2, "learning_results": True},
         [{"op": "crop", "axis": -1, "start": 0, "end": 8}], "preprocess steps change the patterns"),
        ("csig", src, {"op": "decomposition", "components": 2, "learning_results": True, "centre": "signal"},
         None, "centre: signal"),
        ("contig", contiguous, {"op": "decomposition", "components": 2, "learning_results": True},
         None, "this one is contiguous"),
    ]
    for tag, path, spec, pre, msg in cases:
        extra = {"navigation_dimension": 2} if path == contiguous else None
        job = oracle.write_job(os.path.join(tmp, f"bad_{tag}.yaml"), path, {"pca": spec},
                               output_file=os.path.join(tmp, f"bad_{tag}.hspy"), preprocess=pre, input_extra=extra)
        p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=oracle.mpi_env())
        check(p.returncode == 2 and msg in p.stderr and "learning_results" in p.stderr,
              f"validate refuses learning_results with {tag} (exit {p.returncode}): {p.stderr.strip()[-200:]}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        oracle.warm_up(tmp)
        rng = np.random.default_rng(41)
        # a rank-3 spectrum image plus noise, positive for NMF, with independent non-Gaussian sources
        # (peaks) for BSS to separate; 12 x 10 patterns of 40 channels
        ch = np.arange(40)
        a, b = rng.random((120, 3)), np.stack([np.exp(-0.5 * ((ch - c) / 2.0) ** 2) for c in (8, 20, 32)])
        data = (a @ b * 100 + rng.random((120, 40))).reshape(12, 10, 40).astype(np.float32)
        src = os.path.join(tmp, "si.hspy")
        s = hs.signals.Signal1D(data)
        s.save(src, overwrite=True, chunks=(3, 10, 40))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test_svd(tmp, src, data)
            test_nmf(tmp, src, data)
        test_refusals(tmp, src)
    oracle.hbcheck.finish("test_learning_results")


if __name__ == "__main__":
    main()
