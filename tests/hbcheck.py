"""What the Python tests share: counted checks, the MPI environment for root,
and loading with HyperSpy 1.7.3 while failing on any warning it gives."""
import logging
import os
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")  # importing hyperspy itself warns on Python 3.11
import hyperspy.api as hs  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
FAILS = []
CHECKS = [0]


def check(cond, what):
    CHECKS[0] += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


def finish(name):
    """Print the tally and exit non-zero if any check failed."""
    print(f"{name}: {CHECKS[0]} checks, {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def warm_up(tmp):
    """Load a file HyperSpy wrote itself once, so that the warnings HyperSpy
    gives on its first load of any file (its own deprecations) are not blamed
    on ours."""
    path = os.path.join(tmp, "warmup.hspy")
    hs.signals.Signal2D(np.zeros((2, 3, 4), dtype="uint8")).save(path, overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hs.load(path)
        hs.load(path, lazy=True)


def load_quietly(path, **kw):
    """hs.load as a list of signals, checking that it gave no Python warning
    and logged no warning."""
    log = _Collect()
    logging.getLogger().addHandler(log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = hs.load(path, **kw)
    logging.getLogger().removeHandler(log)
    msgs = [str(w.message) for w in caught] + [r.getMessage() for r in log.records]
    check(not msgs, f"load {os.path.basename(path)} {kw or ''} without warnings {msgs if msgs else ''}")
    return out if isinstance(out, list) else [out]


def by_title(signals):
    return {s.metadata.General.title: s for s in signals}
