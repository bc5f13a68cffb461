"""Benchmark suites behind ``hecrypt bench`` (see :mod:`hecrypt.benchmarks._harness`)."""

from ._harness import Bench, format_row, format_table

__all__ = ["Bench", "format_row", "format_table"]
