"""HyperSpy as the oracle for hyperbatch's operations.

HyperSpy (Debian's 1.7.3) writes a calibrated input, hyperbatch runs a job on
it at 1, 2 and 3 ranks (each into its own output), and every result is
compared with what a HyperSpy expression returns on the same input: values
(exact for integers, rtol/atol for floats), dtype, signal class, and every
axis (name, units, scale, offset, size, navigate, is_binned); the outputs of
the different rank counts must be bit-identical.

    import oracle
    from oracle import Case
    o = oracle.Oracle(sys.argv[1], tmp)          # path to hyperbatch, a scratch folder
    src = o.spectrum_image("si_f32.hspy", dtype="float32")
    o.suite(src, [
        Case("total", {"op": "sum", "axes": "signal"}, "s.sum(sig)", rtol=1e-6,
             known=("dtype", "class", "navigate")),
        Case("mean_sp", {"op": "mean", "axes": "navigation"}, lambda s: s.mean(s.axes_manager.navigation_axes)),
    ])
    oracle.finish("test_x")                      # tally, known mismatches, exit status

or step by step: runs = o.run(src, {"total": {"op": "sum", "axes": "signal"}}),
then o.compare(runs, "total", "s.sum(sig)").

An expectation is a callable taking the loaded input signal (a fresh deep
copy each time), or a string evaluated with `s` (that copy), `nav` and `sig`
(its navigation and signal axes as natural-order indices, NAV(s) and SIG(s),
so that they also apply to s.isig[...] or s * mask), `np` and `hs`. It returns a
signal (compared in full) or anything numpy turns into an array (values
only).  HyperSpy 1.7.3 has no axis='navigation' / axis='signal': use
`s.sum(nav)` / `s.sum(sig)` (or `s.sum()`, whose default is navigation).

Every check prints one line through hbcheck.check ("ok   ..." or "FAIL ...")
and is counted for hbcheck.finish.  A field listed in `known=` that differs
prints "KNOWN ..." instead and is not a failure (it is collected for the
summary `finish` prints); when it agrees after all, the line says so.
Fields: values, dtype, shape, class, name, units, scale, offset, size,
navigate, is_binned, ranks (bit-identity of the rank outputs), load (the
output loads without warnings).  Oracle(..., raise_on_fail=True) raises
OracleFailure at the first failure instead of carrying on.
"""
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import hbcheck  # noqa: E402
from hbcheck import by_title, check, hs, load_quietly, warm_up  # noqa: E402,F401
import h5py  # noqa: E402
import yaml  # noqa: E402

AXIS_FIELDS = ("name", "units", "scale", "offset", "size", "navigate", "is_binned")
FIELDS = ("values", "dtype", "shape", "class") + AXIS_FIELDS + ("ranks", "load")
KNOWN = []  # (where, field, detail) of every known mismatch seen


class OracleFailure(AssertionError):
    pass


# ---------------------------------------------------------------- environment

_ENV = None


def mpi_env(extra=None):
    """The environment scripts/env.sh makes (root, oversubscribe, loopback
    transports), plus `extra`."""
    global _ENV
    if _ENV is None:
        out = subprocess.run(["bash", "-c", f". '{ROOT}/scripts/env.sh' && env -0"], capture_output=True,
                             check=True).stdout.decode()
        _ENV = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
    env = dict(_ENV)
    env.update(extra or {})
    return env


def nav(s):
    """s's navigation axes (objects: valid for s only)."""
    return s.axes_manager.navigation_axes


def sig(s):
    """s's signal axes (objects: valid for s only)."""
    return s.axes_manager.signal_axes


def NAV(s):
    """s's navigation axes as natural-order indices (0, 1, ...): valid for
    any signal derived from s that keeps its navigation dimension (s.isig[...],
    s * mask, ...)."""
    return tuple(range(s.axes_manager.navigation_dimension))


def SIG(s):
    """s's signal axes as negative natural-order indices (-m, ..., -1):
    valid for any signal derived from s that keeps its signal dimension
    (s.inav[...], s.isig[a:b], s * mask, ...)."""
    return tuple(range(-s.axes_manager.signal_dimension, 0))


# --------------------------------------------------------------------- inputs

def calibrate(s, axes):
    """axes: (name, units, scale, offset) per array axis, in array (C) order
    (axes_manager._axes is in array order)."""
    assert len(axes) == len(s.axes_manager._axes)
    for ax, (name, units, scale, offset) in zip(s.axes_manager._axes, axes):
        ax.name, ax.units, ax.scale, ax.offset = name, units, scale, offset


def _save(s, path, chunks, compression):
    kw = {"overwrite": True, "compression": compression}
    if chunks is not None:
        kw["chunks"] = tuple(chunks)
    s.save(path, **kw)
    with h5py.File(path, "r") as f:  # hyperbatch needs a chunked dataset; say so early
        d = f["Experiments"][list(f["Experiments"])[0]]["data"]
        assert d.chunks is not None, f"{path}: HyperSpy wrote a contiguous dataset"
    return path


def _cast(x, dtype):
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)


SPECTRUM_AXES = [("y", "nm", 2.5, -1.0), ("x", "nm", 1.5, 3.0), ("Energy loss", "eV", 0.5, 280.25)]


def eels_like(rng, nav_shape, energy):
    """Counts of an EELS-like spectrum image: a power-law background
    A (E / E0)^-r with A and r varying over the scan, a carbon-K-like edge at
    285 eV with a decaying tail, a Gaussian peak at 330 eV, and Poisson
    noise."""
    n = int(np.prod(nav_shape))
    a = rng.uniform(2000, 4000, n)[:, None]
    r = rng.uniform(2.5, 3.5, n)[:, None]
    e = energy[None, :]
    bg = a * (e / energy[0]) ** -r
    edge = rng.uniform(100, 400, n)[:, None] * (e >= 285) * np.exp(-np.clip(e - 285, 0, None) / 40)
    peak = rng.uniform(50, 150, n)[:, None] * np.exp(-0.5 * ((e - 330) / 3) ** 2)
    return rng.poisson(bg + edge + peak).astype(np.float64).reshape(tuple(nav_shape) + (len(energy),))


def write_spectrum_image(path, dtype="float32", nav_shape=(5, 7), channels=203, seed=16, chunks=(2, 3, 64),
                         compression="gzip", nans=0, noise=True, title="eels_si", axes=None):
    """A Signal1D saved by HyperSpy: navigation nav_shape (array order, e.g.
    5 x 7 is HyperSpy's (7, 5|...)), `channels` energy channels, calibrated
    (SPECTRUM_AXES, or `axes`). Floats get Gaussian read noise on top of the
    counts (noise=True), so they are not integers; `nans` NaNs at seeded
    places. The default chunks leave partial chunks at every edge. Returns
    path."""
    rng = np.random.default_rng(seed)
    axes = axes or SPECTRUM_AXES[-len(nav_shape) - 1:]
    energy = axes[-1][3] + axes[-1][2] * np.arange(channels)
    x = eels_like(rng, nav_shape, energy)
    if noise and not np.issubdtype(np.dtype(dtype), np.integer):
        x += rng.normal(0, 3, x.shape)
    x = _cast(x, dtype)
    for _ in range(nans):
        x[tuple(rng.integers(0, n) for n in x.shape)] = np.nan
    s = hs.signals.Signal1D(x)
    calibrate(s, axes)
    s.metadata.General.title = title
    return _save(s, path, chunks, compression)


STACK_AXES = {1: [("t", "s", 0.1, 0.0)], 2: [("y", "nm", 0.8, -2.0), ("x", "nm", 0.6, 1.0)]}
STACK_SIGNAL_AXES = [("ky", "1/nm", 0.02, -0.26), ("kx", "1/nm", 0.02, -0.32)]


def write_image_stack(path, dtype="uint16", nav_shape=(9,), sig_shape=(27, 33), seed=17, chunks=(4, 10, 16),
                      compression="gzip", nans=0, title="stack", axes=None):
    """A Signal2D saved by HyperSpy: navigation nav_shape, patterns
    sig_shape (array order: ky, kx; HyperSpy shows (kx, ky)), calibrated
    (STACK_AXES + STACK_SIGNAL_AXES: square pixels, so calibrated circles
    work), a bright disc that moves over the stack, Gaussian spots and
    Poisson noise. Returns path."""
    rng = np.random.default_rng(seed)
    nav_shape, sig_shape = tuple(nav_shape), tuple(sig_shape)
    ky, kx = sig_shape
    yy, xx = np.mgrid[0:ky, 0:kx]
    n = int(np.prod(nav_shape))
    x = np.empty((n,) + sig_shape)
    for i in range(n):
        cy, cx = ky / 2 + rng.normal(0, 1), kx / 2 + rng.normal(0, 1)
        img = 20 + 400 * (((yy - cy) ** 2 + (xx - cx) ** 2) <= 16)
        for _ in range(4):
            py, px = rng.uniform(0, ky), rng.uniform(0, kx)
            img = img + rng.uniform(50, 200) * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / 3)
        x[i] = rng.poisson(img)
    x = x.reshape(nav_shape + sig_shape)
    if not np.issubdtype(np.dtype(dtype), np.integer):
        x += rng.normal(0, 2, x.shape)
    x = _cast(x, dtype)
    for _ in range(nans):
        x[tuple(rng.integers(0, m) for m in x.shape)] = np.nan
    s = hs.signals.Signal2D(x)
    calibrate(s, axes or STACK_AXES[len(nav_shape)] + STACK_SIGNAL_AXES)
    s.metadata.General.title = title
    return _save(s, path, chunks, compression)


# ----------------------------------------------------------------------- jobs

def write_job(path, input_file, kernels, output_file="out.hspy", run=None, input_extra=None, output_extra=None,
              preprocess=None):
    """Write a job: kernels is {name: {"op": ..., params...}} (in order).
    Paths are made absolute. run defaults to {progress: off, block: 1} (block
    1 = one input chunk per block: many blocks even on a small input).
    Returns path."""
    inp = {"file": os.path.abspath(input_file)}
    inp.update(input_extra or {})
    out = {"file": os.path.abspath(output_file), "overwrite": True, "previews": False}
    out.update(output_extra or {})
    job = {"version": 1, "input": inp, "output": out}
    if preprocess:
        job["preprocess"] = list(preprocess)
    job["kernels"] = [dict({"name": name}, **spec) for name, spec in kernels.items()]
    job["run"] = dict({"progress": "off", "block": 1}, **(run or {}))
    with open(path, "w") as f:
        yaml.safe_dump(job, f, sort_keys=False, default_flow_style=None, width=1000)
    return path


def run_hyperbatch(hb, job, n, sets=(), env=None, timeout=300):
    """mpirun -q -n N hb run JOB --set ... (--oversubscribe above 2)."""
    cmd = ["mpirun", "-q", "-n", str(n)] + (["--oversubscribe"] if n > 2 else []) + [hb, "run", job]
    for s in sets:
        cmd += ["--set", s]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or mpi_env())
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, 124, e.stdout or "", f"timed out after {timeout} s")


def stop_and_resume(hb, job, rounds, sets=(), checkpoint_seconds="0", after_each=None, env=None):
    """Run `job` in rounds of (ranks, stop_after): the first starts afresh,
    the others pass --resume; a round with a stop_after stops itself (as
    Slurm's warning would: SIGUSR1 after that many blocks, a checkpoint every
    HB_CHECKPOINT_SECONDS) and exits 75. after_each(i) runs after round i.
    env: the environment of every round (default mpi_env()). Returns the
    rounds' processes."""
    procs = []
    for i, (n, after) in enumerate(rounds):
        round_env = dict(env or mpi_env())
        if after is not None:
            round_env["HB_FAULT_SIGNAL_AFTER"] = str(after)
            if checkpoint_seconds is not None:
                round_env["HB_CHECKPOINT_SECONDS"] = checkpoint_seconds
        cmd = ["mpirun", "-q", "-n", str(n), "--oversubscribe", hb, "run", job] + (["--resume"] if i else [])
        for x in sets:
            cmd += ["--set", x]
        procs.append(subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=round_env))
        if after_each:
            after_each(i)
    return procs


def bit_identical(ref, out):
    """tests/compare_outputs.py on two outputs: (every result bit-identical,
    its summary line)."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "compare_outputs.py"), ref, out],
                       capture_output=True, text=True)
    return p.returncode == 0 and "bit-identical" in p.stdout, p.stdout.strip()


class Runs:
    """One job run at several rank counts: outputs[n] is rank count n's
    output file (None where the run failed)."""

    def __init__(self, tag, src, job, outputs, procs):
        self.tag, self.src, self.job, self.outputs, self.procs = tag, src, job, outputs, procs
        self._signals = {}

    @property
    def ranks(self):
        return [n for n, p in self.outputs.items() if p]

    def signals(self, n, lazy=False):
        """{result name: signal} of rank count n's output, loaded once (with
        the no-warnings check of hbcheck.load_quietly)."""
        key = (n, lazy)
        if key not in self._signals:
            path = self.outputs.get(n)
            self._signals[key] = by_title(load_quietly(path, **({"lazy": True} if lazy else {}))) if path else {}
        return self._signals[key]


# ----------------------------------------------------------------- comparing

def _text(v):
    return str(v)  # t.Undefined -> "<undefined>", as for an axis without a name


def axes_record(s):
    """Each axis of a signal, array order, as a dict of AXIS_FIELDS (plus the
    axis values for a non-uniform axis)."""
    recs = []
    for a in s.axes_manager._axes:
        r = {"name": _text(a.name), "units": _text(a.units), "size": int(a.size), "navigate": bool(a.navigate),
             "is_binned": bool(getattr(a, "is_binned", False))}
        if getattr(a, "is_uniform", True):
            r["scale"], r["offset"] = float(a.scale), float(a.offset)
        else:
            r["scale"] = r["offset"] = ("non-uniform", tuple(np.round(np.asarray(a.axis, float), 12)))
        recs.append(r)
    return recs


def _same_number(a, b, rtol=1e-12):
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    return a == b or abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def _data(x):
    d = x.data if isinstance(x, hs.signals.BaseSignal) else x
    if hasattr(d, "compute"):
        d = d.compute()
    return np.asarray(d)


def _numeric_diff(got, ref, exact, rtol, atol):
    """(ok, text) for two same-shaped numeric arrays."""
    if exact:
        eq = got == ref
        if got.dtype.kind in "fc" or ref.dtype.kind in "fc":
            eq |= np.isnan(got) & np.isnan(ref)
        if eq.all():
            return True, "exact"
        i = tuple(int(v) for v in np.argwhere(~eq)[0])
        return False, (f"{int((~eq).sum())} of {got.size} values differ (exact check); first at {i}: "
                       f"hyperbatch {got[i]!r}, HyperSpy {ref[i]!r}")
    g = got.astype(np.complex128 if np.iscomplexobj(got) or np.iscomplexobj(ref) else np.float64)
    r = ref.astype(g.dtype)
    nan_g, nan_r = np.isnan(g), np.isnan(r)
    if not np.array_equal(nan_g, nan_r):
        return False, f"NaN at different places ({int(nan_g.sum())} in hyperbatch, {int(nan_r.sum())} in HyperSpy)"
    fin = ~nan_r
    if not fin.any():
        return True, "all NaN"
    if atol is None:
        atol = rtol * float(np.max(np.abs(r[fin])))
    g, r = g[fin], r[fin]
    inf = np.isinf(r) | np.isinf(g)
    if np.any(inf) and not np.array_equal(g[inf], r[inf]):
        return False, "infinities differ"
    g, r = g[~inf], r[~inf]
    diff = np.abs(g - r)
    lim = atol + rtol * np.abs(r)
    bad = diff > lim
    worst = float(diff.max()) if diff.size else 0.0
    rel = float(np.max(diff / np.maximum(np.abs(r), 1e-300))) if diff.size else 0.0
    text = f"max |diff| {worst:.3g}, max rel {rel:.3g} (rtol {rtol:g}, atol {atol:.3g})"
    if bad.any():
        i = np.unravel_index(np.argmax(diff - lim), diff.shape)
        text = f"{int(bad.sum())} of {diff.size} values off; " + text + f"; worst hyperbatch {g[i]!r} HyperSpy {r[i]!r}"
    return not bad.any(), text


def compare_values(got, ref, rtol=1e-12, atol=None, exact=None):
    """(ok, text). got, ref: arrays (or signals). exact=None: exact when
    either side is an integer (or bool) array. Otherwise |got - ref| <= atol
    + rtol |ref| elementwise, NaN where the other is NaN; atol=None means
    rtol x max|ref| (the data's scale). Object (ragged) arrays are compared
    element by element."""
    got, ref = _data(got), _data(ref)
    if got.shape != ref.shape:
        return False, f"shape {got.shape} != HyperSpy's {ref.shape}"
    if got.dtype == object or ref.dtype == object:
        for idx in np.ndindex(got.shape):
            a, b = np.asarray(got[idx]), np.asarray(ref[idx])
            ok, text = compare_values(a, b, rtol, atol, exact)
            if not ok:
                return False, f"element {idx}: {text}"
        return True, f"{got.size} ragged elements match"
    if exact is None:
        exact = got.dtype.kind in "iub" or ref.dtype.kind in "iub"
    return _numeric_diff(got, ref, exact, rtol, atol)


def _h5_record(path, name):
    """Everything about result `name` that must not depend on the rank
    count: its data (as stored, decoded), dtype, shape and axis attributes."""
    with h5py.File(path, "r") as f:
        g = f["Experiments"][name]
        d = g["data"]
        data = d[()]
        if d.dtype.kind == "O" or h5py.check_vlen_dtype(d.dtype) is not None:
            blob = b"".join(np.asarray(v).tobytes() + str(np.asarray(v).shape).encode() for v in data.flat)
        else:
            blob = data.tobytes()
        axes = []
        for i in range(d.ndim):
            a = g.get(f"axis-{i}")
            axes.append(sorted((k, repr(v)) for k, v in a.attrs.items()) if a is not None else None)
        return str(d.dtype), d.shape, blob, axes


class Oracle:
    """hb: the hyperbatch binary; workdir: where inputs, jobs and outputs go.
    ranks: the rank counts every job runs at. env_extra: more environment
    (e.g. {"HB_RESULT_CHUNK_BYTES": "64"} for many small result chunks)."""

    def __init__(self, hb, workdir, ranks=(1, 2, 3), raise_on_fail=False, env_extra=None, timeout=300):
        self.hb = os.path.abspath(hb)
        self.workdir = os.path.abspath(workdir)
        self.ranks = tuple(ranks)
        self.raise_on_fail = raise_on_fail
        self.env = mpi_env(env_extra)
        self.timeout = timeout
        self._inputs = {}
        os.makedirs(os.path.join(self.workdir, "out"), exist_ok=True)
        warm_up(self.workdir)

    # --- checks
    def _check(self, cond, what):
        check(cond, what)
        if not cond and self.raise_on_fail:
            raise OracleFailure(what)
        return cond

    def _field(self, ok, field, where, text, known):
        """One check line for `field`; a known field that differs is a
        KNOWN line, not a failure."""
        if field in known:
            if ok:
                print(f"ok   {where}: {field} {text} (listed as known, but it matches)", flush=True)
            else:
                KNOWN.append((where, field, text))
                print(f"KNOWN {where}: {field}: {text}", flush=True)
            return True
        return self._check(ok, f"{where}: {field} {text}")

    # --- inputs
    def path(self, name):
        return name if os.path.isabs(name) else os.path.join(self.workdir, name)

    def spectrum_image(self, name, **kw):
        """write_spectrum_image into the work folder; returns the path."""
        return write_spectrum_image(self.path(name), **kw)

    def image_stack(self, name, **kw):
        """write_image_stack into the work folder; returns the path."""
        return write_image_stack(self.path(name), **kw)

    def input_signal(self, src):
        """The input as HyperSpy loads it (eagerly), a fresh deep copy."""
        if src not in self._inputs:
            s = hs.load(src)
            self._inputs[src] = s[0] if isinstance(s, list) else s
        return self._inputs[src].deepcopy()

    # --- running
    def run(self, src, kernels, tag=None, ranks=None, run=None, sets=(), input_extra=None, output_extra=None,
            preprocess=None):
        """Write a job for `kernels` ({name: {"op": ..., ...}}) on src and
        run it at every rank count into its own output
        (out/<tag>_np<N>.hspy). Returns a Runs."""
        tag = tag or os.path.splitext(os.path.basename(src))[0]
        job = write_job(os.path.join(self.workdir, f"{tag}.yaml"), src, kernels,
                        os.path.join(self.workdir, "out", f"{tag}_np1.hspy"), run, input_extra, output_extra,
                        preprocess)
        outputs, procs = {}, {}
        for n in ranks or self.ranks:
            out = os.path.join(self.workdir, "out", f"{tag}_np{n}.hspy")
            p = run_hyperbatch(self.hb, job, n, [f"output.file={out}"] + list(sets), self.env, self.timeout)
            procs[n] = p
            ok = self._check(p.returncode == 0 and os.path.exists(out),
                             f"[{tag}] hyperbatch np={n} exit {p.returncode}"
                             + (f": {p.stderr.strip()[-800:]}" if p.returncode else ""))
            outputs[n] = out if ok else None
        return Runs(tag, src, job, outputs, procs)

    def identical(self, runs, result):
        """The rank counts' outputs of `result` are bit-identical (decoded
        values, dtype, shape, axis attributes)."""
        recs = {n: _h5_record(runs.outputs[n], result) for n in runs.ranks}
        if len(recs) < 2:
            return True
        first = next(iter(recs.values()))
        diff = [n for n, r in recs.items() if r != first]
        nlist = ",".join(map(str, recs))
        return self._check(not diff, f"[{runs.tag}] {result}: np={nlist} outputs bit-identical"
                           + (f" (np={diff} differ from np={next(iter(recs))})" if diff else ""))

    def expected(self, src, expect, upcast=False):
        """The expectation evaluated on a fresh copy of the input (converted
        to float64 first with upcast=True)."""
        s = self.input_signal(src)
        if upcast:
            s.change_dtype("float64")
        if callable(expect):
            return expect(s)
        return eval(expect, {"np": np, "hs": hs, "math": math}, {"s": s, "nav": NAV(s), "sig": SIG(s)})

    def compare(self, runs, result, expect, rtol=1e-12, atol=None, exact=None, axes=True, dtype=True, known=(),
                lazy=False, upcast=False):
        """Compare result `result` of every rank count's output with the
        HyperSpy expectation `expect` (see the module docstring), and the
        rank outputs with each other. axes/dtype=False skip those checks
        (use known= instead to keep seeing a difference). upcast=True
        compares the values with HyperSpy's expression evaluated on the input
        converted to float64 (s.change_dtype("float64")), so that a float32
        input can be held to a tight rtol; dtype and axes are still compared
        with the expression on the input as it is. lazy=True also compares
        each output loaded lazily. Returns True when every check passed
        (known mismatches do not count)."""
        known = set(known)
        bad = known - set(FIELDS)
        assert not bad, f"unknown fields in known=: {bad}"
        label = expect if isinstance(expect, str) else getattr(expect, "__name__", "callable")
        where = f"[{runs.tag}] {result}"
        fails0 = len(hbcheck.FAILS)
        if not runs.ranks:
            return self._check(False, f"{where}: no output to compare")
        missing = [n for n in runs.ranks if result not in runs.signals(n)]
        if missing:
            names = sorted(runs.signals(runs.ranks[0]))
            return self._check(False, f"{where}: no result '{result}' in np={missing} outputs (it has {names})")
        try:
            ref = self.expected(runs.src, expect)
        except Exception as e:  # a HyperSpy error is a finding too
            return self._check(False, f"{where}: HyperSpy's {label} raised {type(e).__name__}: {e}")
        got = {n: runs.signals(n)[result] for n in runs.ranks}
        g0 = got[runs.ranks[0]]
        refdata = _data(ref)
        is_sig = isinstance(ref, hs.signals.BaseSignal)
        valref = refdata
        if upcast:
            try:
                valref = _data(self.expected(runs.src, expect, upcast=True))
            except Exception as e:
                return self._check(False, f"{where}: HyperSpy's {label} on float64 raised {type(e).__name__}: {e}")
            label += " (input as float64)"

        # values, at every rank count
        res = {n: compare_values(g.data, valref, rtol, atol, exact) for n, g in got.items()}
        badn = [n for n, (ok, _) in res.items() if not ok]
        text = res[badn[0] if badn else runs.ranks[0]][1]
        at = ",".join(map(str, badn or got))
        self._field(not badn, "values", where, f"vs HyperSpy {label} {'off ' if badn else ''}at np={at}: {text}",
                    known)
        if lazy:
            for n in runs.ranks:
                lz = runs.signals(n, lazy=True)[result]
                ok, text = compare_values(lz.data.compute(), g0.data, 0, 0, True)
                self._check(ok, f"{where}: np={n} lazy load equals eager: {text}")
        if dtype:
            self._field(g0.data.dtype == refdata.dtype, "dtype", where,
                        f"hyperbatch {g0.data.dtype}, HyperSpy {refdata.dtype}", known)
        self._field(g0.data.shape == refdata.shape, "shape", where,
                    f"hyperbatch {g0.data.shape}, HyperSpy {refdata.shape}", known)
        if axes and is_sig:
            ca, cr = type(g0).__name__, type(ref).__name__
            self._field(ca == cr, "class", where, f"hyperbatch {ca} {g0.axes_manager._get_dimension_str()}, "
                        f"HyperSpy {cr} {ref.axes_manager._get_dimension_str()}", known)
            ga, ra = axes_record(g0), axes_record(ref)
            if len(ga) != len(ra):
                self._field(False, "shape", where, f"hyperbatch has {len(ga)} axes, HyperSpy {len(ra)}", known)
            else:
                # one line for the fields that agree, one per field that does not
                agree = []
                for f in AXIS_FIELDS:
                    gv = [a[f] for a in ga]
                    rv = [a[f] for a in ra]
                    same = all(_same_number(x, y) if f in ("scale", "offset") else x == y for x, y in zip(gv, rv))
                    if same and f not in known:
                        agree.append(f)
                    else:
                        self._field(same, f, where, f"hyperbatch {gv}, HyperSpy {rv}" if not same else f"{gv}",
                                    known)
                if agree:
                    shown = ", ".join("(" + " ".join(repr(a[f]) for f in agree) + ")" for a in ga)
                    self._check(True, f"{where}: axes' {' '.join(agree)} match HyperSpy's: {shown}")
        # the rank counts agree bit for bit
        if "ranks" in known:
            recs = {n: _h5_record(runs.outputs[n], result) for n in runs.ranks}
            first = next(iter(recs.values()))
            self._field(all(r == first for r in recs.values()), "ranks", where, "outputs bit-identical", known)
        else:
            self.identical(runs, result)
        return len(hbcheck.FAILS) == fails0

    def suite(self, src, cases, tag=None, **run_kw):
        """Run every Case's kernel in one job (at every rank count), then
        compare each. Returns True when every check passed."""
        kernels = {c.name: c.kernel for c in cases}
        runs = self.run(src, kernels, tag=tag, **run_kw)
        ok = True
        for c in cases:
            for result, expect in c.results():
                ok = self.compare(runs, result, expect, **c.opts) and ok
        return ok


class Case:
    """A kernel and what HyperSpy says it should give. expect: one
    expectation for the result named like the kernel, or {result name:
    expectation} for a kernel with several results. opts: compare()'s
    keyword arguments (rtol, atol, exact, axes, dtype, known, lazy,
    upcast)."""

    def __init__(self, name, kernel, expect, **opts):
        self.name, self.kernel, self.expect, self.opts = name, dict(kernel), expect, opts

    def results(self):
        if isinstance(self.expect, dict):
            return list(self.expect.items())
        return [(self.name, self.expect)]


def finish(name):
    """The known mismatches, then hbcheck's tally and exit status."""
    if KNOWN:
        groups = {}
        for where, field, text in KNOWN:
            tag, result = where[1:].split("] ", 1)
            groups.setdefault((field, text), {}).setdefault(tag, []).append(result)
        print(f"{name}: {len(KNOWN)} known mismatches with HyperSpy (not failures):")
        for (field, text), where in groups.items():
            print(f"  {field}: {text}: " + "; ".join(f"[{t}] {' '.join(dict.fromkeys(r))}" for t, r in where.items()))
    hbcheck.finish(name)


__all__ = ["Oracle", "Case", "Runs", "OracleFailure", "finish", "check", "hs", "nav", "sig", "NAV", "SIG", "write_job",
           "run_hyperbatch", "write_spectrum_image", "write_image_stack", "compare_values", "axes_record",
           "calibrate", "mpi_env"]
