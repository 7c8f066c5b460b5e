"""decomposition against HyperSpy 1.7.3 and sklearn 1.2 on the same files, at
1, 2 and 3 ranks with uneven blocks: PCA for every centre option and with
Poisson normalisation (exact and randomized), exact SVD's Gram precision and
eigensolver, randomized PCA read again from disk (cache: disk) against the cache, NMF (cd, mu) iteration by
iteration from the same W and H, default stopping, ground truth of the
synthetic EELS data, navigation/signal masks against HyperSpy's, NMF hals
(monotone, converged residual vs sklearn cd), BSS against HyperSpy's
blind_source_separation and the known spectra, rank-count agreement,
bit-identical repeats, loading without warnings, and validate-time errors.

usage: /usr/bin/python3 test_decomposition.py path/to/hyperbatch"""
import logging
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hbcheck import ENV, by_title, check, finish, hs, load_quietly, warm_up  # noqa: E402
import h5py  # noqa: E402
from sklearn.decomposition import NMF  # noqa: E402

HB = os.path.abspath(sys.argv[1])


def hb(n, job, *sets, cmd="run"):
    args = ["mpirun", "-q", "-n", str(n), HB, cmd, job]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=ENV)


def run(n, job, *sets):
    p = hb(n, job, *sets)
    check(p.returncode == 0, f"np={n} {os.path.basename(job)} {' '.join(sets)} exit {p.returncode} "
          f"{p.stderr[-800:] if p.returncode else ''}")
    return p.returncode == 0


def run_ranks(tmp, job, name, *sets, ranks=(1, 2, 3)):
    """Runs job at each rank count into NAME_<n>.hspy; yields (n, path) for the runs that succeeded."""
    for n in ranks:
        out = f"{name}_{n}.hspy"
        if run(n, job, *sets, f"output.file={out}"):
            yield n, os.path.join(tmp, out)


def write_job(tmp, name, src, kernel, block=10):
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"""version: 1
input: {{file: {src}}}
output: {{file: {name}_out.hspy, overwrite: true}}
kernels:
  - {{name: dec, {kernel}}}
run: {{block: {block}, progress: off}}
""")
    return path


def results(path):
    with h5py.File(path, "r") as f:
        return {k: f["Experiments"][k]["data"][()] for k in f["Experiments"]}


def abscos(a, b):
    a = np.ravel(a).astype(float)
    b = np.ravel(b).astype(float)
    return abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))


def rel(a, b):
    if np.isnan(a).any() or np.isnan(b).any():  # masked outputs: NaN in the same places, the rest compared
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return np.inf
        a, b = a[~np.isnan(b)], b[~np.isnan(b)]
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def eels(tmp, name, shape, chunks, seed, *opts):
    path = os.path.join(tmp, name)
    subprocess.run([HB, "synth", "eels", path, "--shape", shape, "--chunks", chunks, "--seed", str(seed), *opts],
                   check=True, capture_output=True)
    return path


def test_pca(tmp):
    """Every centre option and Poisson normalisation, exact and randomized,
    against HyperSpy's full SVD of the same file; also a wide case (N < M),
    where HyperSpy transposes."""
    k = 4
    cases = [("eels.hspy", "20,24,128", "7,5,128"), ("wide.hspy", "6,7,200", "4,3,200")]
    for fname, shape, chunks in cases:
        src = eels(tmp, fname, shape, chunks, 3)
        ref_sig = hs.load(src)
        for centre, poisson in (("none", False), ("navigation", False), ("signal", False), ("none", True)):
            s = ref_sig.deepcopy()
            s.decomposition(svd_solver="full", centre=None if centre == "none" else centre,
                            normalize_poissonian_noise=poisson, print_info=False)
            lr = s.learning_results
            Fh = lr.factors.T[:k]
            Lh = lr.loadings.T[:k]
            evrh = lr.explained_variance_ratio[:k]
            # exact twice: the Gram eigenproblem on rank 0 (LAPACK) and block-cyclic
            # over all ranks (ScaLAPACK, what auto picks when M x M is too big for one rank)
            for solver, gram in (("exact", "local"), ("exact", "scalapack"), ("randomized", None)):
                tag = f"{fname} centre={centre} poisson={poisson} {solver}" + (f" gram {gram}" if gram else "")
                kern = (f"op: decomposition, components: {k}, centre: {centre}, "
                        f"normalize_poissonian_noise: {str(poisson).lower()}, svd_solver: {solver}"
                        + (f", gram_solver: {gram}" if gram else ""))
                job = write_job(tmp, "pca", fname, kern, block=4)
                outs = []
                for n, out in run_ranks(tmp, job, "pca"):
                    outs.append(out)
                    sigs = by_title(load_quietly(out)) if n == 1 and solver == "exact" else None
                    r = results(out)
                    F = r["dec_factors"].reshape(k, -1)
                    L = r["dec_loadings"].reshape(k, -1)
                    cf = min(abscos(F[i], Fh[i]) for i in range(k))
                    cl = min(abscos(L[i], Lh[i]) for i in range(k))
                    # randomized (7 power iterations) is held to the top 2 here: components 3
                    # and 4 are noise with nearly equal singular values
                    top = k if solver == "exact" else 2
                    cf = min(abscos(F[i], Fh[i]) for i in range(top))
                    cl = min(abscos(L[i], Lh[i]) for i in range(top))
                    check(cf >= 0.9999 and cl >= 0.9999, f"np={n} {tag}: factors |cos| {cf:.6f}, loadings |cos| {cl:.6f}")
                    evr = r["dec_explained_variance_ratio"]
                    check(np.max(np.abs(evr - evrh)) <= 1e-3,
                          f"np={n} {tag}: explained variance ratio {evr} vs HyperSpy {evrh}")
                    if sigs is not None:
                        f_, l_, e_ = sigs["dec_factors"], sigs["dec_loadings"], sigs["dec_explained_variance_ratio"]
                        check(f_.axes_manager.navigation_shape == (k,) and
                              f_.axes_manager.signal_shape == ref_sig.axes_manager.signal_shape,
                              f"{tag}: factors load as (k | signal) {f_}")
                        check(l_.axes_manager.navigation_shape == (k,) and
                              l_.axes_manager.signal_shape == ref_sig.axes_manager.navigation_shape,
                              f"{tag}: loadings load as (k | navigation) {l_}")
                        check(e_.data.shape == (k,), f"{tag}: explained variance ratio has k values")
                        md = f_.metadata.Decomposition
                        check(md.decomposition_algorithm == "SVD" and md.solver == solver and
                              md.poissonian_noise_normalized == poisson and md.output_dimension == k and
                              md.get_item("gram_solver") == gram,
                              f"{tag}: metadata records algorithm, solver, gram solver, normalisation, k")
                        lazy = by_title(load_quietly(out, lazy=True))
                        check(np.allclose(lazy["dec_loadings"].data.compute(), l_.data), f"{tag}: lazy load")
                agree_ranks(outs, tag)


def test_exact_solvers(tmp):
    """Exact SVD's Gram precision and eigensolver on data with M = 1024, where
    auto picks float32 products and Krylov: against HyperSpy's full SVD, 1-3
    ranks agreeing to 1e-9, the metadata recording what ran.  Uncompressed, so
    that cache auto reads the file twice for centre none and keeps it for
    navigation (whose mean needs a pass of its own)."""
    k = 4
    src = eels(tmp, "m1024.hspy", "24,20,1024", "5,4,1024", 3, "--compression", "none")
    ref_sig = hs.load(src)
    for centre in ("none", "navigation"):
        s = ref_sig.deepcopy()
        s.decomposition(svd_solver="full", centre=None if centre == "none" else centre, print_info=False)
        lr = s.learning_results
        Fh, Lh, evrh = lr.factors.T[:k], lr.loadings.T[:k], lr.explained_variance_ratio[:k]
        combos = [("auto", "auto")] + ([("double", "krylov"), ("single", "dsyevr"), ("double", "dsyevr")]
                                       if centre == "none" else [])
        for prec, eig in combos:
            tag = f"M=1024 centre={centre} gram_precision {prec} eigensolver {eig}"
            kern = f"op: decomposition, components: {k}, svd_solver: exact, centre: {centre}" + \
                "".join(f", {key}: {v}" for key, v in (("gram_precision", prec), ("eigensolver", eig)) if v != "auto")
            job = write_job(tmp, "exs", "m1024.hspy", kern, block=4)
            outs = []
            for n, out in run_ranks(tmp, job, "exs"):
                outs.append(out)
                r = results(outs[-1])
                F, L = r["dec_factors"].reshape(k, -1), r["dec_loadings"].reshape(k, -1)
                cf = min(abscos(F[i], Fh[i]) for i in range(k))
                cl = min(abscos(L[i], Lh[i]) for i in range(k))
                evr = r["dec_explained_variance_ratio"]
                check(cf >= 0.9999 and cl >= 0.9999 and np.max(np.abs(evr - evrh)) <= 1e-3,
                      f"np={n} {tag}: |cos| factors {cf:.6f} loadings {cl:.6f}, ratio {evr} vs {evrh}")
                with h5py.File(outs[-1], "r") as f:
                    md = f["Experiments/dec_factors/metadata/Decomposition"].attrs
                    got = (md["gram_precision"], md["eigensolver"], int(md["eigensolver_iterations"]))
                krylov = eig in ("auto", "krylov")
                check(got[0] == ("double" if prec == "double" else "single") and
                      got[1] == ("krylov" if krylov else "dsyevr") and (got[2] > 0) == krylov,
                      f"np={n} {tag}: metadata gram_precision, eigensolver, eigensolver_iterations {got}")
            agree_ranks(outs, tag)


def test_cache_disk(tmp):
    """cache: disk against cache: memory for randomized PCA of float32 and
    uint16 data, where the power iterations read each block again as
    float32 (SGEMM), with and without a signal mask: uncentred, the same
    arithmetic as the float32 cache (equal to 1e-9); centred, where the
    cache is float64 and the disk passes take the mean off after each
    power iteration, the same components (1 - |cos| and the explained
    variance ratio within 1e-9; leaving the mean in the power iterations
    gives 1e-5 and 4e-8 here). At 1, 2 and 3 ranks."""
    mask = ", signal_mask: {shape: rectangle, x: [10, 20]}"
    for dtype in ("float32", "uint16"):
        src = os.path.basename(eels(tmp, f"disk_{dtype}.hspy", "13,11,96", "4,3,96", 9, "--dtype", dtype))
        for extra in ("", mask, ", centre: navigation", ", centre: navigation" + mask):
            kern = "op: decomposition, components: 3, svd_solver: randomized" + extra
            tag = f"{dtype} randomized{extra}"
            mem = write_job(tmp, "dmem", src, kern + ", cache: memory", block=5)
            if not run(2, mem, "output.file=dmem.hspy"):
                continue
            ref = results(os.path.join(tmp, "dmem.hspy"))
            outs = [o for _, o in run_ranks(tmp, write_job(tmp, "ddisk", src, kern + ", cache: disk", block=5), "ddisk")]
            if "centre" not in extra:
                worst = max((rel(results(o)[key], a) for o in outs for key, a in ref.items()), default=np.inf)
                check(worst <= 1e-9, f"{tag}: cache disk equals cache memory to {worst:.2e} relative (<= 1e-9)")
            else:
                for o in outs:
                    r = results(o)
                    F, Fm = r["dec_factors"].reshape(3, -1), ref["dec_factors"].reshape(3, -1)
                    cf = min(abscos(np.nan_to_num(F[i]), np.nan_to_num(Fm[i])) for i in range(3))
                    de = np.max(np.abs(r["dec_explained_variance_ratio"] - ref["dec_explained_variance_ratio"]))
                    check(1 - cf <= 1e-9 and de <= 1e-9, f"{tag}: cache disk against memory: every factor's "
                          f"1 - |cos| {1 - cf:.1e}, explained variance ratio within {de:.1e} (<= 1e-9)")
            agree_ranks(outs, f"{tag} cache disk")


def agree_ranks(outs, tag, tol=1e-9):
    if len(outs) < 2:
        return
    ref = results(outs[0])
    worst = 0.0
    for o in outs[1:]:
        got = results(o)
        for key, a in ref.items():
            worst = max(worst, rel(got[key], a))
    check(worst <= tol, f"{tag}: 1, 2, 3 ranks agree to {worst:.2e} relative (<= {tol})")


def test_repeat(tmp):
    src = eels(tmp, "rep.hspy", "13,11,96", "4,3,96", 7)
    for kern in ("op: decomposition, components: 3, svd_solver: exact, centre: navigation",
                 "op: decomposition, components: 3, svd_solver: exact, gram_solver: scalapack, centre: navigation",
                 "op: decomposition, components: 3, svd_solver: exact, eigensolver: krylov, gram_precision: single",
                 "op: decomposition, components: 3, svd_solver: randomized, random_seed: 5",
                 "op: decomposition, algorithm: nmf, components: 3, solver: mu, max_iter: 50"):
        job = write_job(tmp, "rep", os.path.basename(src), kern, block=5)
        a = os.path.join(tmp, "rep_a.hspy")
        b = os.path.join(tmp, "rep_b.hspy")
        ok = run(2, job, "output.file=rep_a.hspy") and run(2, job, "output.file=rep_b.hspy")
        if ok:
            ra, rb = results(a), results(b)
            check(all(ra[k].tobytes() == rb[k].tobytes() for k in ra), f"{kern}: two runs on 2 ranks bit-identical")


def test_nmf_vs_sklearn(tmp):
    """The same X, the same initial W and H, tol = 0: W and H after a fixed
    number of iterations match sklearn's to 1e-8 (cd and mu), at 1, 2, 3 ranks.
    Two cases: k = 5, M = 61 and blocks of 40 patterns also take the WᵀX
    kernel's paths for a full and a partial group of components, for columns
    past the last eight, and for several runs of rows in one block."""
    for shape, chunks, k, block in (("9,10,64", "4,3,64", 3, 4), ("9,10,61", "4,3,61", 5, 40)):
        nmf_vs_sklearn(tmp, shape, chunks, k, block)


def nmf_vs_sklearn(tmp, shape, chunks, k, block):
    src = eels(tmp, "nmf.hspy", shape, chunks, 11)
    X = hs.load(src).data.astype(np.float64)
    ny, nx, m = X.shape
    rng = np.random.default_rng(4)
    W0 = rng.uniform(0.1, 1, (ny * nx, k)) * np.sqrt(X.mean() / k)
    H0 = rng.uniform(0.1, 1, (k, m)) * np.sqrt(X.mean() / k)
    with h5py.File(os.path.join(tmp, "init.h5"), "w") as f:
        f["W"] = W0.reshape(ny, nx, k)
        f["H"] = H0
    for solver, iters in (("cd", 25), ("mu", 60)):
        est = NMF(n_components=k, init="custom", solver=solver, tol=0, max_iter=iters)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Ws = est.fit_transform(X.reshape(-1, m), W=W0.copy(), H=H0.copy())
        Hs = est.components_
        # float64 products match sklearn on float64 X to 1e-8; the float32
        # ones (the default on this float32 data) to float32's reach
        for prec, tol in (("double", 1e-8), ("single", 1e-5)):
            kern = (f"op: decomposition, algorithm: nmf, components: {k}, solver: {solver}, init: custom, "
                    f"init_file: init.h5, tol: 0, max_iter: {iters}" + (", nmf_precision: double" if prec == "double" else ""))
            job = write_job(tmp, "nmf", "nmf.hspy", kern, block=block)
            outs = []
            for n, out in run_ranks(tmp, job, f"nmf_{solver}_{prec}"):
                outs.append(out)
                r = results(out)
                H = r["dec_factors"].reshape(k, -1)
                W = r["dec_loadings"].reshape(k, -1).T
                with h5py.File(out, "r") as f:
                    ran = f["Experiments/dec_factors/metadata/Decomposition"].attrs.get("nmf_precision", b"")
                    ran = ran.decode() if isinstance(ran, bytes) else ran
                check(ran == prec, f"np={n} nmf {solver} {prec}: the metadata records nmf_precision {ran}")
                check(rel(H, Hs) <= tol and rel(W, Ws) <= tol,
                      f"np={n} k={k} M={m} nmf {solver} {prec} {iters} iterations from the same W, H: H {rel(H, Hs):.1e}, "
                      f"W {rel(W, Ws):.1e} relative to sklearn (<= {tol:g})")
            agree_ranks(outs, f"nmf {solver} {prec} k={k} M={m}")


def nmf_default_and_truth(tmp):
    """On the synthetic EELS data (32 x 32 x 512): with sklearn's defaults
    (nndsvda, tol 1e-4) the residual is within 1% of sklearn's, with and
    without Poisson normalisation; and NMF recovers the known component
    spectra with Poisson normalisation: each lies in the span of the
    factors (|cos| to its projection >= 0.998), and the background matches one
    factor to |cos| >= 0.97."""
    src = eels(tmp, "truth.hspy", "32,32,512", "8,8,512", 1)
    with h5py.File(src, "r") as f:
        g = f["Experiments"][list(f["Experiments"])[0]]
        X = g["data"][()].reshape(-1, 512).astype(np.float64)
        spectra = g["metadata/Synthetic/component_spectra"][()]
    k = 3
    for poisson in (False, True):
        Xn = X
        if poisson:
            Xn = X / (np.sqrt(X.sum(1))[:, None] * np.sqrt(X.sum(0))[None, :])
        for solver in ("cd", "mu"):
            est = NMF(n_components=k, solver=solver)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit_transform(Xn)
            tag = f"nmf {solver} poisson={poisson}"
            job = write_job(tmp, "nmfd", "truth.hspy", f"op: decomposition, algorithm: nmf, components: {k}, "
                            f"solver: {solver}, normalize_poissonian_noise: {str(poisson).lower()}", block=100)
            if not run(3, job, "output.file=nmfd.hspy"):
                continue
            with h5py.File(os.path.join(tmp, "nmfd.hspy"), "r") as f:
                res = f["Experiments/dec_factors/metadata/Decomposition"].attrs["residual"]
            r = results(os.path.join(tmp, "nmfd.hspy"))
            H = r["dec_factors"].reshape(k, -1)
            W = r["dec_loadings"].reshape(k, -1).T
            if poisson:  # the residual is of the normalised X
                direct = np.linalg.norm(Xn - (W / np.sqrt(X.sum(1))[:, None]) @ (H / np.sqrt(X.sum(0))[None, :]))
            else:
                direct = np.linalg.norm(X - W @ H)
            check(abs(res - direct) <= 1e-6 * direct, f"{tag}: residual without WH {res:.6g} == direct {direct:.6g}")
            check(abs(res - est.reconstruction_err_) <= 0.01 * est.reconstruction_err_,
                  f"{tag} default stopping: residual {res:.6g} within 1% of sklearn's {est.reconstruction_err_:.6g}")
            Q, _ = np.linalg.qr(H.T)
            span = [np.linalg.norm(Q.T @ t) / np.linalg.norm(t) for t in spectra]
            best = [max(abscos(t, h) for h in H) for t in spectra]
            if poisson:  # as EELS is decomposed in practice; NMF alone does not unmix the edges (nor does sklearn's)
                check(min(span) >= 0.998 and best[0] >= 0.97,
                      f"{tag}: known spectra in the factors' span {np.round(span, 4)}, best |cos| {np.round(best, 4)}")


def test_masks(tmp):
    """navigation_mask / signal_mask (True = excluded, as HyperSpy): against
    HyperSpy's full SVD with the same masks for every centre option and
    Poisson normalisation (NaN in the same places, |cos| on the rest, the
    explained variance ratio), NMF cd against sklearn on the unmasked
    submatrix from the same W and H, a geometric navigation mask, 1-3 ranks."""
    src = eels(tmp, "mask.hspy", "12,10,64", "5,4,64", 3)
    rng = np.random.default_rng(0)
    nav = rng.random((12, 10)) < 0.2
    sig = np.zeros(64, bool)
    sig[10:20] = True
    with h5py.File(os.path.join(tmp, "masks.h5"), "w") as f:
        f["nav"] = nav  # h5py stores bool as an HDF5 enum
        f["sig"] = sig.astype("uint8")
    masks = "navigation_mask: {shape: mask, file: masks.h5, dataset: nav}, " \
            "signal_mask: {shape: mask, file: masks.h5, dataset: sig}"
    k = 3
    ref = hs.load(src)
    ref.change_dtype("float64")
    for centre, poisson in (("none", False), ("navigation", False), ("signal", False), ("none", True)):
        s = ref.deepcopy()
        s.decomposition(svd_solver="full", centre=None if centre == "none" else centre,
                        normalize_poissonian_noise=poisson, navigation_mask=hs.signals.BaseSignal(nav).T,
                        signal_mask=sig, print_info=False)
        lr = s.learning_results
        Fh, Lh = lr.factors.T[:k], lr.loadings.T[:k]
        evrh = (lr.explained_variance / lr.explained_variance.sum())[:k]
        tag = f"masks centre={centre} poisson={poisson}"
        job = write_job(tmp, "mask", "mask.hspy", f"op: decomposition, components: {k}, centre: {centre}, "
                        f"normalize_poissonian_noise: {str(poisson).lower()}, svd_solver: exact, {masks}", block=7)
        outs = []
        for n, out in run_ranks(tmp, job, "mask"):
            outs.append(out)
            r = results(outs[-1])
            F, L = r["dec_factors"].reshape(k, -1), r["dec_loadings"].reshape(k, -1)
            same_nan = np.array_equal(np.isnan(F), np.isnan(Fh)) and np.array_equal(np.isnan(L), np.isnan(Lh)) \
                and np.isnan(L).sum() == k * nav.sum() and np.isnan(F).sum() == k * sig.sum()
            m_f, m_l = ~sig, ~nav.ravel()
            cf = min(abscos(F[i][m_f], Fh[i][m_f]) for i in range(k))
            cl = min(abscos(L[i][m_l], Lh[i][m_l]) for i in range(k))
            evr = r["dec_explained_variance_ratio"]
            check(same_nan and cf >= 0.9999 and cl >= 0.9999 and np.max(np.abs(evr - evrh)) <= 1e-6,
                  f"np={n} {tag}: NaN where HyperSpy's {same_nan}, |cos| factors {cf:.6f} loadings {cl:.6f}, "
                  f"ratio {evr} vs {evrh}")
        agree_ranks(outs, tag)
    # the string forms: a mask saved by HyperSpy (FILE holding one signal) and
    # FILE:/DATASET give the same results as the map form, bit for bit
    hs.signals.BaseSignal(nav).save(os.path.join(tmp, "navmask.hspy"), overwrite=True)
    same = []
    for form, m in (("map", masks), ("path", "navigation_mask: navmask.hspy, signal_mask: 'masks.h5:/sig'")):
        job = write_job(tmp, f"m{form}", "mask.hspy", f"op: decomposition, components: {k}, svd_solver: exact, {m}",
                        block=7)
        if run(2, job, f"output.file=mform_{form}.hspy"):
            same.append(results(os.path.join(tmp, f"mform_{form}.hspy")))
    ok = len(same) == 2 and sorted(same[0]) == sorted(same[1]) and all(
        same[0][key].tobytes() == same[1][key].tobytes() for key in same[0])
    check(ok, "masks as 'navmask.hspy' (saved by HyperSpy) and 'masks.h5:/sig': bit-identical to the map form")
    # on the 1-D signal a rectangle is an interval (in pixels, or in eV with
    # units: calibrated): the same results as the mask dataset, bit for bit
    ax = ref.axes_manager.signal_axes[0]
    e0, e1 = ax.offset + 10 * ax.scale, ax.offset + 20 * ax.scale
    same = []
    for form, m in (("dataset", "'masks.h5:/sig'"), ("px", "{shape: rectangle, x: [10, 20]}"),
                    ("ev", f"{{shape: rectangle, x: [{e0}, {e1}], units: calibrated}}")):
        job = write_job(tmp, f"s{form}", "mask.hspy", f"op: decomposition, components: {k}, svd_solver: exact, "
                        f"signal_mask: {m}", block=7)
        if run(2, job, f"output.file=sform_{form}.hspy"):
            same.append(results(os.path.join(tmp, f"sform_{form}.hspy")))
    ok = len(same) == 3 and all(sorted(o) == sorted(same[0]) and all(
        o[key].tobytes() == same[0][key].tobytes() for key in o) for o in same[1:])
    check(ok and np.isnan(same[0]["dec_factors"][:, 10:20]).all(),
          "1-D signal_mask {shape: rectangle, x: [10, 20]} (px and calibrated): bit-identical to the mask dataset")
    # NMF cd on the submatrix, from the same W and H
    X = ref.data.reshape(-1, 64)
    Xs = X[~nav.ravel()][:, ~sig]
    W0 = rng.uniform(0.1, 1, (120, k)) * np.sqrt(Xs.mean() / k)
    H0 = rng.uniform(0.1, 1, (k, 64)) * np.sqrt(Xs.mean() / k)
    with h5py.File(os.path.join(tmp, "minit.h5"), "w") as f:
        f["W"] = W0.reshape(12, 10, k)
        f["H"] = H0
    est = NMF(n_components=k, init="custom", solver="cd", tol=0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Ws = est.fit_transform(Xs, W=W0[~nav.ravel()].copy(), H=H0[:, ~sig].copy())
    job = write_job(tmp, "mnmf", "mask.hspy", f"op: decomposition, algorithm: nmf, components: {k}, init: custom, "
                    f"init_file: minit.h5, tol: 0, max_iter: 20, nmf_precision: double, {masks}", block=7)
    for n in (1, 3):
        if run(n, job, f"output.file=mnmf_{n}.hspy"):
            r = results(os.path.join(tmp, f"mnmf_{n}.hspy"))
            H = r["dec_factors"].reshape(k, -1)
            W = r["dec_loadings"].reshape(k, -1).T
            ok = np.isnan(H[:, sig]).all() and np.isnan(W[nav.ravel()]).all()
            eh, ew = rel(H[:, ~sig], est.components_), rel(W[~nav.ravel()], Ws)
            check(ok and eh <= 1e-8 and ew <= 1e-8,
                  f"np={n} masked nmf cd vs sklearn on the submatrix: NaN at masked {ok}, H {eh:.1e}, W {ew:.1e}")
    # bss with both masks: NaN where the decomposition has NaN, the model kept on the rest
    job = write_job(tmp, "mbss", "mask.hspy", f"op: decomposition, components: {k}, svd_solver: exact, bss: true, "
                    f"{masks}", block=7)
    outs = []
    for n in (1, 3):
        if run(n, job, f"output.file=mbss_{n}.hspy"):
            outs.append(os.path.join(tmp, f"mbss_{n}.hspy"))
            r = results(outs[-1])
            BF, BL = r["dec_bss_factors"].reshape(k, -1), r["dec_bss_loadings"].reshape(k, -1)
            F, L = r["dec_factors"].reshape(k, -1), r["dec_loadings"].reshape(k, -1)
            same = np.array_equal(np.isnan(BF), np.isnan(F)) and np.array_equal(np.isnan(BL), np.isnan(L))
            m_f, m_l = ~sig, ~nav.ravel()
            model = rel(BL[:, m_l].T @ BF[:, m_f], L[:, m_l].T @ F[:, m_f])
            check(same and model <= 1e-9, f"np={n} bss with masks: NaN as the decomposition's {same}, model {model:.1e}")
    agree_ranks(outs, "bss with masks")
    # a geometric navigation mask: the rectangle's patterns are excluded
    job = write_job(tmp, "mgeo", "mask.hspy", "op: decomposition, components: 2, svd_solver: exact, "
                    "navigation_mask: {shape: rectangle, x: [2, 5], y: [1, 4]}", block=7)
    if run(2, job, "output.file=mgeo.hspy"):
        L = results(os.path.join(tmp, "mgeo.hspy"))["dec_loadings"]
        want = np.zeros((12, 10), bool)
        want[1:4, 2:5] = True
        check(np.array_equal(np.isnan(L[0]), want), "rectangle navigation_mask: NaN exactly at y 1..3, x 2..4")


def test_hals(tmp):
    """solver: hals (sklearn has none): the residual never increases from one
    iteration to the next; converged (tol 1e-6) it is within 1% of sklearn
    cd's at the same tol; 1, 2, 3 ranks agree; two runs are bit-identical."""
    src = eels(tmp, "hals.hspy", "32,32,512", "8,8,512", 1)
    X = hs.load(src).data.reshape(-1, 512).astype(np.float64)
    k = 3
    job = write_job(tmp, "hals", "hals.hspy", f"op: decomposition, algorithm: nmf, components: {k}, solver: hals",
                    block=100)

    def residual(out):
        with h5py.File(os.path.join(tmp, out), "r") as f:
            a = f["Experiments/dec_factors/metadata/Decomposition"].attrs
            return a["residual"], a["iterations"], a["solver"]
    res = []
    for it in range(1, 9):
        if run(2, job, "kernels.dec.tol=0", f"kernels.dec.max_iter={it}", f"output.file=hals_it{it}.hspy"):
            res.append(residual(f"hals_it{it}.hspy")[0])
    check(len(res) == 8 and all(b <= a for a, b in zip(res, res[1:])) and res[-1] < res[0],
          f"hals residual non-increasing over iterations 1..8: {np.round(res, 2)}")
    est = NMF(n_components=k, solver="cd", tol=1e-6, max_iter=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    outs = []
    for n, out in run_ranks(tmp, job, "hals", "kernels.dec.tol=1e-6", "kernels.dec.max_iter=5000"):
        outs.append(out)
        r, iters, solver = residual(out)
        check(solver == "hals" and abs(r - est.reconstruction_err_) <= 0.01 * est.reconstruction_err_,
              f"np={n} hals converged: residual {r:.6g} after {iters} iterations within 1% of sklearn cd's "
              f"{est.reconstruction_err_:.6g} ({est.n_iter_} iterations)")
    agree_ranks(outs, "nmf hals")
    if run(3, job, "kernels.dec.tol=1e-6", "kernels.dec.max_iter=5000", "output.file=hals_3b.hspy") and outs:
        a, b = results(outs[-1]), results(os.path.join(tmp, "hals_3b.hspy"))
        check(all(a[key].tobytes() == b[key].tobytes() for key in a), "hals: two runs on 3 ranks bit-identical")


def match(A, B):
    """Pairs each row of B with its best |cos| row of A: (|cos| list, sign list)."""
    cos, sign = [], []
    for b in B:
        c = [abscos(a, b) for a in A]
        i = int(np.argmax(c))
        cos.append(c[i])
        sign.append(float(np.sign(A[i] @ b)))
    return np.array(cos), np.array(sign)


def test_bss(tmp):
    """bss: true on the synthetic EELS data (Poisson-normalised SVD and NMF):
    the BSS factors recover the generator's component spectra; they match
    HyperSpy's blind_source_separation() on the same file (its defaults: on
    the factors, diff_order 1, PCA whitening, sklearn FastICA) up to
    permutation, with the same signs; the unmixing leaves the model
    (loadings x factors) unchanged; 1, 2, 3 ranks agree; bss_on: loadings."""
    src = eels(tmp, "bss.hspy", "32,32,512", "8,8,512", 1)
    with h5py.File(src, "r") as f:
        g = f["Experiments"][list(f["Experiments"])[0]]
        spectra = g["metadata/Synthetic/component_spectra"][()]
        maps = g["metadata/Synthetic/component_maps"][()].reshape(3, -1)
    k = 3
    ref = hs.load(src)
    ref.change_dtype("float64")
    for alg in ("svd", "nmf"):
        s = ref.deepcopy()
        s.decomposition(algorithm="SVD" if alg == "svd" else "NMF", output_dimension=k, svd_solver="full",
                        normalize_poissonian_noise=True, print_info=False)
        logging.getLogger("hyperspy.learn.mva").setLevel(logging.ERROR)  # its own whitening notice
        s.blind_source_separation(k, print_info=False)
        HF, HL = s.learning_results.bss_factors.T, s.learning_results.bss_loadings.T
        tag = f"bss after {alg}"
        job = write_job(tmp, "bss", "bss.hspy", f"op: decomposition, algorithm: {alg}, components: {k}, "
                        "normalize_poissonian_noise: true, bss: true", block=100)
        outs = []
        for n, out in run_ranks(tmp, job, f"bss_{alg}"):
            outs.append(out)
            r = results(outs[-1])
            BF, BL = r["dec_bss_factors"].reshape(k, -1), r["dec_bss_loadings"].reshape(k, -1)
            F, L = r["dec_factors"].reshape(k, -1), r["dec_loadings"].reshape(k, -1)
            truth = [max(abscos(t, b) for b in BF) for t in spectra]
            check(truth[0] >= 0.999 and truth[1] >= 0.99 and truth[2] >= 0.85,
                  f"np={n} {tag}: known spectra (background, C K, O K) best |cos| {np.round(truth, 4)}")
            cf, sf = match(BF, HF)
            cl, sl = match(BL, HL)
            check(min(cf) >= 0.9999 and min(cl) >= 0.9999 and (sf > 0).all() and (sl > 0).all(),
                  f"np={n} {tag}: vs HyperSpy's BSS |cos| factors {np.round(cf, 6)}, loadings {np.round(cl, 6)}, "
                  f"same signs {sf} {sl}")
            model = rel(BL.T @ BF, L.T @ F)
            check(model <= 1e-9, f"np={n} {tag}: bss loadings x factors == loadings x factors ({model:.1e})")
            if n == 1:
                sigs = by_title(load_quietly(outs[-1]))
                bf = sigs["dec_bss_factors"]
                check(bf.axes_manager.navigation_shape == (k,) and
                      bf.axes_manager.signal_shape == ref.axes_manager.signal_shape and
                      bf.metadata.BSS.bss_algorithm == "sklearn_fastica" and not bf.metadata.BSS.on_loadings and
                      bf.metadata.BSS.unmixing_matrix.shape == (k, k), f"{tag}: bss factors load as (k | signal)")
        agree_ranks(outs, tag)
    # on the loadings (gathered to rank 0): FastICA converges slowly there, so
    # only what must hold: the model, the ranks, and the background map found
    job = write_job(tmp, "bssl", "bss.hspy", f"op: decomposition, components: {k}, normalize_poissonian_noise: true, "
                    "bss: true, bss_on: loadings", block=100)
    outs = []
    for n, out in run_ranks(tmp, job, "bssl", ranks=(1, 3)):
        outs.append(out)
        r = results(out)
        BF, BL = r["dec_bss_factors"].reshape(k, -1), r["dec_bss_loadings"].reshape(k, -1)
        F, L = r["dec_factors"].reshape(k, -1), r["dec_loadings"].reshape(k, -1)
        bg = max(abscos(maps[0], b) for b in BL)
        model = rel(BL.T @ BF, L.T @ F)
        check(model <= 1e-9 and bg >= 0.99,
              f"np={n} bss_on loadings: model kept ({model:.1e}), background map best |cos| {bg:.4f}")
    agree_ranks(outs, "bss_on loadings")


def expect_error(job, sets, code, text, what, cmd="validate"):
    p = hb(2, job, *sets, cmd=cmd)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("hyperbatch: error:")]
    check(p.returncode == code and len(lines) == 1 and text in lines[0],
          f"{what}: exit {p.returncode}, {lines}")


def test_errors(tmp):
    eels(tmp, "err.hspy", "5,6,40", "5,6,40", 2)
    job = write_job(tmp, "err", "err.hspy", "op: decomposition, components: 3")
    expect_error(job, ["kernels.dec.components=31"], 2,
                 "components must be 1 to min(N, M) = 30 (navigation size N = 30, signal size M = 40), got 31",
                 "components > min(N, M)")
    expect_error(job, ["kernels.dec.centre=navigation", "kernels.dec.normalize_poissonian_noise=true"], 2,
                 "normalize_poissonian_noise needs centre: none", "centre with Poisson normalisation")
    expect_error(job, ["kernels.dec.max_iter=5"], 2, "'max_iter' does not apply to algorithm svd", "NMF key with svd")
    for key, value in (("gram_precision", "single"), ("eigensolver", "krylov")):
        expect_error(job, ["kernels.dec.gram_solver=scalapack", f"kernels.dec.{key}={value}"], 2,
                     f"{key}: {value} needs gram_solver: local", f"{key} {value} with scalapack")
    expect_error(job, ["kernels.dec.algorithm=nmf", "kernels.dec.centre=signal"], 2,
                 "'centre' does not apply to algorithm nmf", "centre with NMF")
    expect_error(job, ["kernels.dec.algorithm=nmf", "kernels.dec.init=custom"], 2, "init: custom needs init_file",
                 "custom init without a file")
    with h5py.File(os.path.join(tmp, "badinit.h5"), "w") as f:
        f["W"] = np.ones((5, 6, 2))
        f["H"] = np.ones((3, 40))
    expect_error(job, ["kernels.dec.algorithm=nmf", "kernels.dec.init=custom", "kernels.dec.init_file=badinit.h5"], 2,
                 "needs a dataset W of shape (*navigation_shape, components)", "init_file with the wrong W")
    with open(job) as f:
        text = f.read()
    line = text.splitlines().index("  - {name: dec, op: decomposition, components: 3}") + 1
    p = hb(1, job, "kernels.dec.components=31", cmd="validate")
    check("job.yaml" not in p.stderr and "--set kernels.dec.components=31" in p.stderr,
          f"an error in a --set value names the --set: {p.stderr.strip()}")
    with open(job, "w") as f:
        f.write(text.replace("components: 3", "components: 99"))
    p = hb(1, job, cmd="validate")
    check(p.returncode == 2 and f"err.yaml:{line}:" in p.stderr, f"an error names job.yaml:LINE:COL: {p.stderr.strip()}")
    # (the job now says components: 99; masks and bss keys are checked first or set it back)
    expect_error(job, ["kernels.dec.components=3", "kernels.dec.bss_on=loadings"], 2, "'bss_on' needs bss: true", "bss key without bss")
    expect_error(job, ["kernels.dec.bss=true", "kernels.dec.components=1"], 2, "bss needs 2 to 64 components",
                 "bss with one component")
    # masks: shapes and geometry checked at validate time
    with h5py.File(os.path.join(tmp, "badmask.h5"), "w") as f:
        f["nav"] = np.zeros((6, 5), bool)
        f["sig"] = np.ones(40, bool)
        f["most"] = np.ones((5, 6), bool)
        f["most"][0, :2] = False
    expect_error(job, ["kernels.dec.navigation_mask={shape: mask, file: badmask.h5, dataset: nav}"], 2,
                 "mask 'nav' must be 5 x 6 (the navigation shape), got 2-D 6 x 5", "navigation_mask of the wrong shape")
    expect_error(job, ["kernels.dec.signal_mask={shape: circle, center: [3, 3], radius: 2}"], 2,
                 "a circle detector needs a 2-D signal; this one has 1 axis", "a circle on a 1-D signal")
    expect_error(job, ["kernels.dec.signal_mask={shape: rectangle, x: [3, 9], y: [0, 1]}"], 2,
                 "'y' does not apply to a rectangle detector (it takes: x)", "a rectangle's y on a 1-D signal")
    expect_error(job, ["kernels.dec.navigation_mask={shape: mask, file: badmask.h5, dataset: most}"], 2,
                 "components must be 1 to min(N, M) = 2 (unmasked navigation size N = 2", "components > unmasked")
    expect_error(job, ["kernels.dec.signal_mask={shape: mask, file: badmask.h5, dataset: nope}"], 2,
                 "mask file 'badmask.h5' has no dataset 'nope'", "missing mask dataset")
    expect_error(job, ["kernels.dec.signal_mask=badmask.h5"], 2,
                 "mask file 'badmask.h5' does not hold exactly one HyperSpy signal: name the dataset as "
                 "'badmask.h5:/path/to/dataset'", "mask path without a dataset in a plain HDF5 file")
    mjob = write_job(tmp, "merr", "err.hspy", "op: decomposition, components: 2,\n"
                     "      navigation_mask: {shape: mask, file: badmask.h5, dataset: nav}")
    p = hb(1, mjob, cmd="validate")
    check(p.returncode == 2 and "merr.yaml:6:" in p.stderr and "must be 5 x 6 (the navigation shape)" in p.stderr,
          f"a mask error names job.yaml:LINE:COL: {p.stderr.strip()}")
    # negative data: found when the data is read, named by position
    neg = np.abs(np.random.default_rng(1).normal(5, 1, (4, 5, 30))).astype("float32")
    neg[2, 3, 17] = -1.5
    hs.signals.Signal1D(neg).save(os.path.join(tmp, "neg.hspy"), overwrite=True)
    job = write_job(tmp, "neg", "neg.hspy", "op: decomposition, components: 2, algorithm: nmf", block=3)
    expect_error(job, [], 2, "negative value -1.5 at navigation index (2, 3), signal index (17)",
                 "negative data with NMF", cmd="run")
    check(not any(f.startswith("neg_out") for f in os.listdir(tmp)), "no output left behind")
    expect_error(job, ["kernels.dec.algorithm=svd", "kernels.dec.normalize_poissonian_noise=true"], 2,
                 "negative value -1.5 at navigation index (2, 3), signal index (17)",
                 "negative data with Poisson normalisation", cmd="run")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        warm_up(tmp)
        tests = {"errors": test_errors, "masks": test_masks, "hals": test_hals, "bss": test_bss, "pca": test_pca, "exact": test_exact_solvers,
                 "repeat": test_repeat, "nmf": test_nmf_vs_sklearn, "truth": nmf_default_and_truth,
                 "disk": test_cache_disk}
        only = sys.argv[2:] or list(tests)
        for name, test in tests.items():
            if name in only:
                test(tmp)
    finish("test_decomposition")


main()
