"""Benchmark harness shared by the suites of ``hecrypt bench`` and ``bench/``.

A suite is a module ``hecrypt.benchmarks.<name>`` exposing ``SUITE`` (its name),
``DESCRIPTION`` and ``run(bench: Bench) -> None``, which times cases with
:meth:`Bench.time` and adds rows with :meth:`Bench.record`.  Every row carries at least
``case``, ``device``, ``hecrypt_s``, ``baseline``, ``baseline_s`` and ``speedup``
(``baseline_s / hecrypt_s``; ``None`` where no baseline ran); suites add their own keys
(``online_s``, ``offline_s``, ``bytes``, ``rounds`` ...).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Bench:
    """Timing context handed to each suite."""

    device: str = "cpu"
    quick: bool = False
    suite: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    log: Callable[[str], None] = lambda msg: None

    def sync(self) -> None:
        """Wait for queued GPU work (no-op on the CPU)."""
        if self.device == "cuda":
            from ..backend import get_backend

            get_backend("cuda").synchronize()

    def time(self, fn: Callable[[], Any], *, repeat: int | None = None, warmup: int = 1,
             min_time: float = 0.0, sync: bool | None = None) -> float:
        """Median wall-clock seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs.

        On CUDA the device is synchronised around each run (``sync`` defaults to that).
        """
        if repeat is None:
            repeat = 3 if self.quick else 7
        do_sync = (self.device == "cuda") if sync is None else sync
        for _ in range(warmup):
            fn()
        if do_sync:
            self.sync()
        times = []
        t_total = 0.0
        i = 0
        while i < repeat or t_total < min_time:
            t0 = time.perf_counter()
            fn()
            if do_sync:
                self.sync()
            dt = time.perf_counter() - t0
            times.append(dt)
            t_total += dt
            i += 1
            if i >= 1000:
                break
        return statistics.median(times)

    def record(self, case: str, hecrypt_s: float | None, baseline: str | None = None,
               baseline_s: float | None = None, *, device: str | None = None, **extra: Any) -> dict[str, Any]:
        speedup = (baseline_s / hecrypt_s) if (baseline_s and hecrypt_s) else None
        row = {
            "suite": self.suite,
            "case": case,
            "device": device or self.device,
            "hecrypt_s": hecrypt_s,
            "baseline": baseline,
            "baseline_s": baseline_s,
            "speedup": speedup,
        }
        row.update(extra)
        self.rows.append(row)
        self.log(format_row(row))
        return row


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def format_row(row: dict[str, Any]) -> str:
    sp = row.get("speedup")
    return (f"{row['case']:<44} {row['device']:<5} {_fmt_s(row['hecrypt_s']):>11}  "
            f"{(row.get('baseline') or '-'):<28} {_fmt_s(row.get('baseline_s')):>11}  "
            f"{(f'{sp:.2f}x' if sp else '-'):>8}")


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'case':<44} {'dev':<5} {'hecrypt':>11}  {'baseline':<28} {'base':>11}  {'speedup':>8}")
    return "\n".join([head, "-" * len(head)] + [format_row(r) for r in rows])
