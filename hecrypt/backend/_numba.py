"""Numba helpers shared by the CPU kernel modules (backend layer only)."""

from __future__ import annotations

import types

import numba as nb
import numpy as np


class DualKernel:
    """A Numba kernel compiled twice from the same code: a ``prange``-parallel build and a
    serial one (identical results), the build picked per call by the size of the work.

    The work is the largest ``size`` among the first three array arguments; calls below
    ``min_work`` elements run serially, since waking Numba's worker threads costs more than
    small calls do (far more on a busy host).  Both builds are cached on disk under distinct
    names (``<name>`` and ``<name>_serial``).
    """

    #: tests set this to ``"serial"`` or ``"parallel"`` to force one build everywhere
    force: str | None = None

    def __init__(self, fn, min_work: int):
        self.min_work = int(min_work)
        self.parallel = nb.njit(parallel=True, cache=True)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                  fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        self.serial = nb.njit(cache=True)(twin)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, *args):
        if DualKernel.force is not None:
            return (self.serial if DualKernel.force == "serial" else self.parallel)(*args)
        work = 0
        for x in args[:3]:
            if isinstance(x, np.ndarray) and x.size > work:
                work = x.size
        return (self.parallel if work >= self.min_work else self.serial)(*args)


def dual_kernel(min_work: int):
    """Decorator form of :class:`DualKernel`."""
    return lambda fn: DualKernel(fn, min_work)
