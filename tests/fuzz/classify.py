#!/usr/bin/env python3
"""Whose bug is a sanitizer/libFuzzer report: ours (hyperbatch's src/ or the
harness) or upstream (inside a system library such as libhdf5, on a corrupt
file)?  Prints "ours" or "upstream" and one line saying why.

  classify.py REPORT.txt
  classify.py --signature REPORT.txt

--signature prints a short signature of the problem instead: its kind (the
ASan error type, the UBSan message without numbers, the MPI error class,
"leak", "timeout", ...) and the first two frames in hyperbatch's src/ (by
function name, so that it survives line changes).  run.sh uses it to tell a
known open bug found again from a new one.

Rules, in order:
  - UBSan "runtime error", a leak (libmpi/libhdf5 leaks are suppressed), an
    MPI error that would abort hyperbatch: ours;
  - an ASan error with an allocation stack ("allocated by thread"): whoever
    allocated the memory that was overrun (first frame past malloc & co.);
  - an ASan error on a stack variable ("located in stack of thread"): the
    frame that owns the variable;
  - anything else (SEGV, deadly signal, timeout, out-of-memory): the first
    frame past the sanitizer/libFuzzer/libc machinery.
A frame is upstream when it is in a shared library (".so"), ours otherwise.
"""
import re
import sys

FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ +(?:in (\S+))?(.*)$")
MACHINERY = re.compile(
    r"^(__interceptor_|__asan|__sanitizer|__lsan|__ubsan|fuzzer::|malloc$|calloc$|realloc$|free$|strdup$|"
    r"strndup$|memcpy$|memmove$|memset$|posix_memalign$|aligned_alloc$|operator|abort$|raise$|"
    r"__pthread_kill|__GI_|__libc_|gsignal$|mpi_error_is_a_crash$|ompi_errhandler|MPI_)")

LIBC_SOURCE = re.compile(r"(^|\s)(string|sysdeps|csu|nptl|stdlib|malloc)/")


def frames(lines):
    out = []
    for ln in lines:
        m = FRAME.match(ln)
        if m:
            out.append((int(m.group(1)), m.group(2) or "??", m.group(3)))
        elif out:
            break
    return out


def first_real(fr):
    for _, fn, where in fr:
        # libc's string functions symbolized from glibc's sources ("string/",
        # "sysdeps/") are libc too, whoever called them
        if not MACHINERY.match(fn) and "/libc.so" not in where and not LIBC_SOURCE.search(where):
            return fn, where
    return (fr[0][1], fr[0][2]) if fr else ("?", "")


def name(fn, where):
    if fn != "??":
        return fn
    m = re.search(r"\(/[^)]*/([^/)]+\.so[.0-9]*)\+", where)
    return m.group(1) if m else fn


def is_lib(where):
    return re.search(r"\(/[^)]*\.so[.0-9]*\+0x", where) is not None


def main():
    text = open(sys.argv[1], errors="replace").read()
    lines = text.splitlines()
    if "runtime error:" in text:
        return "ours", "UBSan: " + next(l for l in lines if "runtime error:" in l).strip()[:160]
    if "LeakSanitizer: detected memory leaks" in text:
        return "ours", "a leak outside the suppressed MPI/HDF5 libraries"
    if "MPI error that would abort hyperbatch" in text:
        return "ours", next(l for l in lines if "MPI error that would abort" in l).strip()[:160]
    for i, ln in enumerate(lines):
        if re.search(r"(allocated|freed) by thread", ln):
            fn, where = first_real(frames(lines[i + 1:]))
            who = "upstream" if is_lib(where) else "ours"
            return who, f"the memory involved was allocated in {name(fn, where)}"
        if "located in stack of thread" in ln:
            fr = frames(lines[i + 1:])
            fn, where = (fr[0][1], fr[0][2]) if fr else ("?", "")
            who = "upstream" if is_lib(where) else "ours"
            return who, f"a stack variable of {name(fn, where)}"
    for i, ln in enumerate(lines):
        if re.search(r"ERROR: (AddressSanitizer|libFuzzer)|ALARM: working on the last Unit|out-of-memory", ln):
            fn, where = first_real(frames(lines[i + 1:]))
            who = "upstream" if is_lib(where) else "ours"
            return who, f"{ln.strip()[:100]} in {name(fn, where)}"
    return "ours", "unrecognised report (treated as ours)"


def signature(text):
    lines = text.splitlines()
    kind = "unknown"
    m = re.search(r"MPI error that would abort hyperbatch \(MPI_ERRORS_ARE_FATAL\): (MPI_ERR_\w+)", text)
    if m:
        kind = m.group(1)
    elif "runtime error:" in text:
        msg = next(l for l in lines if "runtime error:" in l).split("runtime error:", 1)[1]
        kind = "ubsan:" + re.sub(r"0x[0-9a-f]+|-?\d+", "N", msg).strip()[:80]
    elif "LeakSanitizer: detected memory leaks" in text:
        kind = "leak"
    else:
        m = re.search(r"ERROR: AddressSanitizer: ([\w-]+)", text)
        if m:
            kind = m.group(1)
        elif "ALARM: working on the last Unit" in text or "libFuzzer: timeout" in text:
            kind = "timeout"
        elif "out-of-memory" in text:
            kind = "out-of-memory"
        elif "deadly signal" in text:
            kind = "deadly-signal"
    ours = []
    for ln in lines:
        m = FRAME.match(ln)
        if m and m.group(2) and re.search(r"/src/[^ ]*\.c:\d+", m.group(3)):
            if m.group(2) not in ours:
                ours.append(m.group(2))
            if len(ours) == 2:
                break
    return kind + "@" + ",".join(ours or ["-"])


if __name__ == "__main__":
    if sys.argv[1] == "--signature":
        print(signature(open(sys.argv[2], errors="replace").read()))
        sys.exit(0)
    who, why = main()
    print(who, why)
