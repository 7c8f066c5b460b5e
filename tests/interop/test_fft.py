"""The fft family (fft, ifft) against HyperSpy 1.7.3's fft/ifft (oracle.py),
on inputs HyperSpy writes itself: a uint16 Signal2D stack (9 | 33, 27) and a
float32 Signal1D spectrum image (7, 5 | 203) (and, through preprocess steps, a
complex64 stack with an even axis), gzip, partial edge chunks, at
1, 2 and 3 ranks: complex values, dtypes, classes (ComplexSignal1D/2D on
load) and every axis.  As kernels (a dataset each) and in `preprocess`
(ifft(fft(x)) == x, a mean power spectrum); an FFTW wisdom file; and
`hyperbatch validate` of bad parameters (exit 2 at job.yaml:LINE:COL).

Differences from HyperSpy, on purpose (known=):
- apodization without shift: HyperSpy transforms the data without its
  window (a bug); hyperbatch windows it ("values" against
  s.fft(apodization=...), and equal to apply_apodization + fft);
- shift on an even axis: hyperbatch's offset is the first frequency,
  -(N//2)·scale; HyperSpy's -(N-1)·scale/2 is half a bin off ("offset").
HyperSpy's ifft(return_real=True) raises on a real signal (`.real` exists
only on complex signals): the expectations take the real part of
ifft(return_real=False).

usage: /usr/bin/python3 test_fft.py path/to/hyperbatch"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import NAV, SIG, Case, check  # noqa: E402
import hyperspy.api as hs  # noqa: E402

HB = os.path.abspath(sys.argv[1])
NAVSHAPED = ("class", "navigate")  # navigation-shaped results are stored with navigate=False


def real_ifft(**kw):
    """HyperSpy's ifft of a real signal, as it would be with return_real=True."""
    def expect(s):
        r = s.ifft(return_real=False, **kw)
        r._assign_subclass()
        return r.real
    return expect


def complex_ifft(s):
    r = s.ifft(return_real=False)
    r._assign_subclass()  # what saving and loading it gives
    return r


def apodized(window, shift, **kw):
    return lambda s: s.apply_apodization(window, inplace=False, **kw).fft(shift=shift)


def test_stack(o):
    tag = "stack_u16"
    src = o.image_stack(tag + ".hspy", dtype="uint16")  # (9 | 33, 27), chunks (4, 10, 16), units 1/nm
    s = o.input_signal(src)
    check(s.axes_manager.signal_shape == (33, 27), f"[{tag}] HyperSpy wrote {s}")
    cases = [
        Case("f", {"op": "fft"}, "s.fft()", lazy=True),
        Case("f_shift", {"op": "fft", "shift": True}, "s.fft(shift=True)"),
        Case("hann", {"op": "fft", "shift": True, "apodization": True}, "s.fft(shift=True, apodization=True)"),
        Case("hann_noshift", {"op": "fft", "apodization": "hann"}, apodized("hann", False)),
        Case("hamming", {"op": "fft", "shift": True, "apodization": "hamming"},
             "s.fft(shift=True, apodization='hamming')"),
        Case("tukey", {"op": "fft", "shift": True, "apodization": "tukey"}, "s.fft(shift=True, apodization='tukey')"),
        Case("tukey03", {"op": "fft", "shift": True, "apodization": "tukey", "tukey_alpha": 0.3},
             apodized("tukey", True, tukey_alpha=0.3)),
        Case("hann2", {"op": "fft", "shift": True, "apodization": "hann", "hann_order": 2},
             apodized("hann", True, hann_order=2)),
        Case("power", {"op": "fft", "shift": True, "power_spectrum": True}, "s.fft(shift=True).amplitude ** 2"),
        Case("inv", {"op": "ifft"}, real_ifft()),
        Case("inv_shift", {"op": "ifft", "shift": True}, real_ifft(shift=True)),
        Case("inv_complex", {"op": "ifft", "return_real": False}, complex_ifft),
    ]
    runs = o.run(src, {c.name: c.kernel for c in cases}, tag=tag)
    for c in cases:
        o.compare(runs, c.name, c.expect, **c.opts)
    # HyperSpy's own fft(apodization=...) without shift ignores the window
    o.compare(runs, "hann_noshift", "s.fft(apodization='hann')", known=("values",))


def test_spectra(o):
    tag = "si_f32"
    src = o.spectrum_image(tag + ".hspy", dtype="float32")  # (7, 5 | 203), chunks (2, 3, 64), eV
    o.suite(src, [
        Case("f", {"op": "fft"}, "s.fft()", lazy=True),
        Case("f_shift", {"op": "fft", "shift": True}, "s.fft(shift=True)"),
        Case("hamming", {"op": "fft", "shift": True, "apodization": "hamming"},
             "s.fft(shift=True, apodization='hamming')"),
        Case("hann_noshift", {"op": "fft", "apodization": True}, apodized("hann", False)),
        Case("power", {"op": "fft", "power_spectrum": True}, "s.fft().amplitude ** 2"),
        Case("inv", {"op": "ifft"}, real_ifft()),
    ], tag=tag)


def test_even(o):
    """An even signal axis (ky cropped to 26 by a preprocess step), of
    complex64 data (change_dtype, a second step): the shifted offset is where
    HyperSpy is half a bin off."""
    tag = "stack_even"
    src = o.image_stack(tag + ".hspy", dtype="float32", seed=23)

    def cropped(f):
        def expect(s):
            s.crop("ky", 0, 26)
            s.change_dtype("complex64")
            return f(s)
        return expect

    o.suite(src, [
        Case("f", {"op": "fft"}, cropped(lambda s: s.fft())),
        Case("f_shift", {"op": "fft", "shift": True}, cropped(lambda s: s.fft(shift=True)), known=("offset",)),
        Case("tukey1", {"op": "fft", "shift": True, "apodization": "tukey", "tukey_alpha": 1.0},
             cropped(apodized("tukey", True, tukey_alpha=1.0)), known=("offset",)),
        Case("power", {"op": "fft", "shift": True, "power_spectrum": True},
             cropped(lambda s: s.fft(shift=True).amplitude ** 2), known=("offset",)),
        Case("inv_shift", {"op": "ifft", "shift": True}, cropped(real_ifft(shift=True))),
    ], tag=tag, preprocess=[{"op": "crop", "axis": "ky", "start": 0, "end": 26},
                                       {"op": "change_dtype", "dtype": "complex64"}])


def test_units(o):
    """The frequency axes' units as HyperSpy writes them (pint's inverse,
    short symbols; units pint does not know stay as they are), on images
    whose two signal axes carry two of them."""
    pairs = (("um", "1/nm"), ("angstrom", "nm^-1"), ("pixels", "channel"), ("\u00b0", "m^2"), ("micron", "1 / \u00c5"),
             ("mrad", "\u03bcm"), ("1/(pm)", "us"), ("nanometer", "px**-1"))
    for i, (ux, uy) in enumerate(pairs):
        s = hs.signals.Signal2D(np.random.default_rng(50 + i).random((2, 5, 7)).astype(np.float32))  # odd: no offset rule
        s.axes_manager.signal_axes[0].units, s.axes_manager.signal_axes[1].units = ux, uy
        tag = f"units_{i}"
        src = o.path(tag + ".hspy")
        s.save(src, overwrite=True)
        o.suite(src, [Case("f", {"op": "fft", "shift": True}, "s.fft(shift=True)")], tag=tag, ranks=(1,))


def test_roundtrip(o, src, tag):
    """fft in preprocess, ifft as the kernel: HyperSpy's s.fft().ifft(), and
    the input itself."""
    s = o.input_signal(src)
    scale = float(np.abs(s.data).max())
    runs = o.run(src, {"back": {"op": "ifft", "shift": True}, "back_c": {"op": "ifft", "shift": True,
                                                                          "return_real": False}},
                 tag=tag, preprocess=[{"op": "fft", "shift": True}])
    o.compare(runs, "back", "s.fft(shift=True).ifft()")
    o.compare(runs, "back", lambda s: s.data.astype(np.float64), atol=1e-12 * scale)
    o.compare(runs, "back_c", "s.fft(shift=True).ifft(return_real=False)")


def test_power_mean(o, src):
    """A mean power spectrum: fft(power_spectrum) in preprocess, mean over
    the scan."""
    tag = "stack_power_mean"
    runs = o.run(src, {"mean_ps": {"op": "mean", "axes": "navigation"}, "total": {"op": "sum", "axes": "signal"}},
                 tag=tag, preprocess=[{"op": "fft", "shift": True, "power_spectrum": True}])
    o.compare(runs, "mean_ps", lambda s: (s.fft(shift=True).amplitude ** 2).mean(NAV(s)))
    o.compare(runs, "total", lambda s: (s.fft(shift=True).amplitude ** 2).sum(SIG(s)), known=NAVSHAPED)


def test_wisdom(o, src):
    """Measured plans from a wisdom file every rank imports."""
    wis = o.path("fft.wisdom")
    tool = shutil.which("fftw-wisdom")
    if not tool:
        check(True, "fftw-wisdom is not installed (Debian's libfftw3-bin): wisdom not tested")
        return
    p = subprocess.run([tool, "-n", "-m", "-o", wis, "rof27x33", "cib27x33"], capture_output=True, text=True,
                       timeout=120)
    check(p.returncode == 0 and os.path.getsize(wis) > 0, f"fftw-wisdom made {wis}: {p.stderr.strip()}")
    runs = o.run(src, {"f": {"op": "fft", "shift": True, "wisdom": wis},
                       "inv": {"op": "ifft", "wisdom": wis}}, tag="stack_wisdom")
    o.compare(runs, "f", "s.fft(shift=True)")
    o.compare(runs, "inv", real_ifft())


def bad_job(o, src, n, body, token):
    """A job whose kernel (or preprocess) lines are `body`; returns its path
    and the position of `token` in it ("bad_N.yaml:LINE:COL")."""
    job = o.path(f"bad_{n}.yaml")
    text = (f"version: 1\ninput: {{file: {src}}}\noutput: {{file: {o.path('bad_out.hspy')}, overwrite: true}}\n"
            + body + "\nrun: {progress: off}\n")
    if "kernels:" not in body:
        text = text.replace("\nrun:", "\nkernels:\n  - {name: m, op: mean, axes: navigation}\nrun:")
    with open(job, "w") as f:
        f.write(text)
    lines = text.splitlines()
    line = next(i for i, ln in enumerate(lines, 1) if token in ln)
    return job, f"bad_{n}.yaml:{line}:{lines[line - 1].index(token) + 1}"


def test_validate(o, src):
    """`hyperbatch validate` of bad parameters: exit 2, the message, and the
    position (line and column) of the offending key or value."""
    not_wisdom = o.path("not.wisdom")
    with open(not_wisdom, "w") as f:
        f.write("this is not wisdom\n")
    k = "kernels:\n  - "
    bad = [  # label, job lines, the token the error points at, what it says
        ("an unknown window", k + "{name: f, op: fft, apodization: blackman}", "blackman",
         "must be one of false|true|hann|hamming|tukey"),
        ("hann_order 0", k + "{name: f, op: fft, apodization: hann, hann_order: 0}", "0}",
         "hann_order must be 1 to 1000"),
        ("hann_order with hamming", k + "{name: f, op: fft, apodization: hamming, hann_order: 2}", "2}",
         "hann_order applies to apodization: hann"),
        ("tukey_alpha 1.5", k + "{name: f, op: fft, apodization: tukey, tukey_alpha: 1.5}", "1.5",
         "tukey_alpha must be 0 to 1"),
        ("tukey_alpha without tukey", k + "{name: f, op: fft, tukey_alpha: 0.2}", "0.2",
         "tukey_alpha applies to apodization: tukey"),
        ("a misspelt key", k + "{name: f, op: fft, shfit: true}", "shfit", "did you mean 'shift'"),
        ("power_spectrum on ifft", k + "{name: f, op: ifft, power_spectrum: true}", "power_spectrum",
         "unknown key 'power_spectrum'"),
        ("a missing wisdom file", k + "{name: f, op: fft, wisdom: no_such.wisdom}", "no_such.wisdom",
         "no_such.wisdom"),
        ("a file that is not wisdom", k + f"{{name: f, op: fft, wisdom: {not_wisdom}}}", not_wisdom,
         "is not an FFTW wisdom file"),
        ("a bad preprocess fft", "preprocess:\n  - {op: fft, shift: maybe}", "maybe", "must be true or false"),
    ]
    procs = []
    for n, (label, body, token, text) in enumerate(bad):  # validated all at once: each is mostly MPI's start-up
        job, where = bad_job(o, src, n, body, token)
        procs.append((label, where, text, subprocess.Popen([HB, "validate", job], stdout=subprocess.PIPE,
                                                           stderr=subprocess.PIPE, text=True, env=o.env)))
    for label, where, text, p in procs:
        _, err = p.communicate(timeout=120)
        err = err.strip()
        check(p.returncode == 2 and where in err and text in err,
              f"validate {label}: exit {p.returncode} (2), at {where}, saying '{text}': {err}")


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        o = oracle.Oracle(HB, tmp)
        stack, si = o.path("stack_u16.hspy"), o.path("si_f32.hspy")
        for part in (lambda: test_stack(o), lambda: test_spectra(o), lambda: test_even(o), lambda: test_units(o),
                     lambda: test_roundtrip(o, stack, "stack_roundtrip"), lambda: test_roundtrip(o, si, "si_roundtrip"),
                     lambda: test_power_mean(o, stack), lambda: test_wisdom(o, stack), lambda: test_validate(o, stack)):
            t = time.time()
            part()
            print(f"  ({time.time() - t:.1f} s)", flush=True)
    print(f"test_fft: {time.time() - t0:.1f} s")
    oracle.finish("test_fft")


main()
