"""The ``hecrypt`` command: ``hecrypt info | demo [NAME] | bench [SUITE...]``.

* ``hecrypt info [--json] [--device D]``: versions, the device ``auto`` picks and why, the GPU
  (name, compute capability) when there is one, where the kernel sources and prebuilt
  fatbins are, and which matmul path each ring uses.
* ``hecrypt demo [NAME] [options]``: runs ``hecrypt.demos.<NAME>`` (default ``xor``); each
  demo module has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
* ``hecrypt bench [SUITE...] [--quick] [--json FILE] [--device D] [--list]``: runs the
  benchmark suites ``hecrypt.benchmarks.<module>`` (modules with ``SUITE``, ``DESCRIPTION``,
  ``run(bench)``), prints the table and optionally writes the JSON records.

The CLI is the top layer: it imports the library, never CuPy or Numba directly; demo and
suite modules are imported only by the ``demo`` and ``bench`` commands (a suite module that
fails to import is reported and skipped, so one broken suite does not hide the others).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__

DEFAULT_DEMO = "xor"
#: suites that run as part of another one on the GPU: ``hecrypt bench ring --device cuda``
#: also runs ``ring-tc`` (the tensor-core matmul suite)
GPU_COMPANIONS = {"ring": ("ring-tc",)}


# ======================================================================================
# helpers
# ======================================================================================
def _dist_version(*names: str) -> str | None:
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _module_version(mod: str, *dists: str) -> str | None:
    m = sys.modules.get(mod)
    v = getattr(m, "__version__", None) if m is not None else None
    return str(v) if v else _dist_version(*(dists or (mod,)))


def _safe(fn: Callable[[], Any], what: str) -> Any:
    """Call ``fn``; on any error return a string saying what failed (info never crashes)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - info reports, it does not fail
        return f"unavailable ({what}: {type(exc).__name__}: {exc})"


def kernel_source_dir() -> Path | None:
    """Directory of the CUDA kernel sources: ``hecrypt/_kernels`` in an installed wheel,
    ``<repo>/kernels`` in a source tree or editable install (asks the backend first)."""
    try:
        from .backend import kernels as _k  # written by the GPU backend; optional here

        d = _k.kernel_source_dir()
        if d is not None:
            return Path(d)
    except Exception:  # noqa: BLE001 - ImportError, or KernelError when no sources are found
        pass
    pkg = Path(__file__).resolve().parent
    for cand in (pkg / "_kernels", pkg.parent / "kernels"):
        if cand.is_dir():
            return cand
    return None


def _kernels_info() -> dict[str, Any]:
    d = kernel_source_dir()
    info: dict[str, Any] = {
        "source_dir": str(d) if d else None,
        "sources": sorted(p.name for p in d.glob("*.cu")) if d else [],
        "headers": sorted(str(p.relative_to(d)) for p in d.rglob("*.cuh")) if d else [],
    }

    def prebuilt() -> Any:
        from .backend import kernels as _k

        return _k.prebuilt_status()

    info["prebuilt"] = _safe(prebuilt, "hecrypt.backend.kernels.prebuilt_status")
    return info


def _cpu_matmul_paths() -> dict[str, str]:
    """Which exact method the CPU backend uses per ring (its own report when it has one)."""
    from .backend import cpu

    rep = getattr(cpu, "matmul_path_report", None)
    if callable(rep):
        return rep()
    out = {}
    for name, bits, q in (("Z2_64", 64, 0), ("Z2_32", 32, 0), ("Zq(501337)", 64, 501337),
                          ("Zq(q<2^62)", 64, (1 << 62) - 57)):
        if name == "Z2_64" and hasattr(cpu, "KARATSUBA64_KMAX"):
            out[name] = ("float64 BLAS, Karatsuba on balanced 22/20/22-bit limbs (5 GEMM-equivalents), "
                         f"exact for K <= {cpu.KARATSUBA64_KMAX} per chunk")
            continue
        p = cpu.limb_plan(bits, q)
        out[name] = (f"float64 BLAS on {p.nlimbs} balanced {p.width}-bit limb(s), {p.ndiag} diagonal(s) "
                     f"({p.gemm_equivalents} GEMM-equivalents), exact for K <= {p.kmax} per chunk")
    return out


def _gpu_info() -> dict[str, Any]:
    """GPU name and compute capability, from the CUDA backend (or nvidia-smi as a fallback)."""
    try:
        from .backend import cuda as _cuda

        fn = getattr(_cuda, "device_info", None)
        if fn is not None:
            d = fn()
            if isinstance(d, dict):
                return d
    except ImportError:
        pass
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi:
        r = subprocess.run([smi, "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        if r.returncode == 0 and r.stdout.strip():
            name, cc, mem = [s.strip() for s in r.stdout.strip().splitlines()[0].split(",")][:3]
            return {"name": name, "compute_capability": cc, "memory": mem, "source": "nvidia-smi"}
    return {"name": None, "compute_capability": None,
            "source": "unknown (hecrypt.backend.cuda.device_info missing and no nvidia-smi)"}


def _blas_info() -> Any:
    import numpy as np

    cfg = np.show_config(mode="dicts")
    blas = cfg.get("Build Dependencies", {}).get("blas", {})
    return {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)}


def info_dict(device: str | None = None) -> dict[str, Any]:
    """Everything ``hecrypt info`` reports, as a JSON-able dict.

    ``device`` (or ``$HECRYPT_DEVICE``) is the device to explain; ``auto`` is always explained.
    Without a usable GPU this imports CuPy (inside the backend) at most and compiles nothing.
    With one, the GPU matmul report runs the paths' first-use self-checks (the int8
    tensor-core path against the CPU and SIMT results, the float64 limb path against SIMT),
    which loads or NVRTC-compiles those kernels, so that it reports the paths actually taken.
    """
    import numpy as np

    from .backend import ENV_VAR, cuda_status, explain_device

    d: dict[str, Any] = {
        "hecrypt": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numba": _module_version("numba"),
        "cupy": _dist_version("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"),
        "numba_cuda": _dist_version("numba-cuda"),
        "cryptography": _dist_version("cryptography"),
        "blas": _safe(_blas_info, "numpy.show_config"),
    }
    auto_dev, auto_why = explain_device("auto")
    d["auto_device"] = auto_dev
    d["auto_reason"] = auto_why.split(": ", 1)[1] if auto_why.startswith("auto (") else auto_why
    d["env"] = {ENV_VAR: os.environ.get(ENV_VAR)}
    try:
        dev, why = explain_device(device)
        d["device"], d["device_reason"] = dev, why
    except Exception as exc:  # DeviceUnavailableError / ValueError: report, do not fail
        d["device"], d["device_reason"] = None, f"{type(exc).__name__}: {exc}"
    ok, why = cuda_status()
    d["cuda"] = {"usable": ok, "reason": why}
    if ok:
        d["gpu"] = _safe(_gpu_info, "GPU query")
    d["kernels"] = _kernels_info()
    paths: dict[str, Any] = {"cpu": _safe(_cpu_matmul_paths, "limb_plan")}
    if ok:
        def gpu_paths() -> Any:
            from .backend import cuda as _cuda

            return _cuda.matmul_path_report()

        paths["cuda"] = _safe(gpu_paths, "hecrypt.backend.cuda.matmul_path_report")
    else:
        paths["cuda"] = f"not available: {why}"
    d["matmul_paths"] = paths
    return d


def format_info(d: dict[str, Any]) -> str:
    """Human-readable ``hecrypt info``."""
    lines = [f"hecrypt {d['hecrypt']}",
             f"  python        {d['python']} on {d['platform']} ({d['cpu_count']} CPUs)",
             f"  numpy         {d['numpy']}   BLAS: {_fmt_val(d.get('blas'))}",
             f"  numba         {d['numba'] or 'not installed'}",
             f"  cupy          {d['cupy'] or 'not installed'}",
             f"  numba-cuda    {d['numba_cuda'] or 'not installed'}",
             f"  cryptography  {d.get('cryptography') or 'NOT INSTALLED (needed for the CPU ChaCha20 keystream)'}",
             f"  auto device   {d['auto_device']}  ({d['auto_reason']})"]
    if d["env"].get("HECRYPT_DEVICE"):
        lines.append(f"  HECRYPT_DEVICE={d['env']['HECRYPT_DEVICE']} -> {d['device']}  ({d['device_reason']})")
    elif d.get("device") != d["auto_device"] or d.get("device") is None:
        lines.append(f"  device        {d['device']}  ({d['device_reason']})")
    if "gpu" in d:
        g = d["gpu"]
        if isinstance(g, dict):
            lines.append(f"  GPU           {g.get('name')}  compute capability {g.get('compute_capability')}")
        else:
            lines.append(f"  GPU           {g}")
    k = d["kernels"]
    lines.append(f"  kernels       {k['source_dir'] or 'NOT FOUND'}  ({len(k['sources'])} .cu sources)")
    pb = k["prebuilt"]
    if isinstance(pb, dict) and isinstance(pb.get("modules"), dict):
        found = sum(1 for v in pb["modules"].values() if str(v).startswith("fatbin"))
        lines.append(f"  prebuilt      {found} of {len(pb['modules'])} modules have a prebuilt fatbin"
                     f" (searched: {_fmt_val(pb.get('searched'))})")
        for mod, how in pb["modules"].items():
            lines.append(f"    {mod:<18} {how}")
        if pb.get("error"):
            lines.append(f"    {pb['error']}")
    else:
        lines.append(f"  prebuilt      {_fmt_val(pb)}")
    for dev, rep in d["matmul_paths"].items():
        lines.append(f"  matmul ({dev}):")
        if isinstance(rep, dict):
            for ring, path in rep.items():
                lines.append(f"    {ring:<12} {_fmt_val(path)}")
        else:
            lines.append(f"    {_fmt_val(rep)}")
    return "\n".join(lines)


def _fmt_val(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt_val(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt_val(x) for x in v) or "-"
    return str(v)


def _loadavg() -> list[float] | None:
    """1/5/15-minute load averages (``None`` where the OS has none): a busy machine skews timings."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM (e.g. from ``timeout``) stop a benchmark run like Ctrl-C, so that the rows
    measured so far are still printed and written.  Returns the function that restores the
    previous handler (a no-op where handlers cannot be set, e.g. outside the main thread)."""
    import signal

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, AttributeError, OSError):  # not the main thread / no SIGTERM here
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, old)


def _dump_json(obj: Any, path: str) -> None:
    text = json.dumps(obj, indent=2, default=str)
    if path == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        Path(path).write_text(text + "\n", encoding="utf-8")


# ======================================================================================
# discovery
# ======================================================================================
def _submodules(pkg_name: str) -> list[str]:
    pkg = importlib.import_module(pkg_name)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def available_demos() -> list[str]:
    """Module names of the demos in ``hecrypt.demos`` (not imported)."""
    return _submodules("hecrypt.demos")


def load_demo(name: str):
    """Import ``hecrypt.demos.<name>`` (``-`` in ``name`` reads as ``_``)."""
    mod_name = name.replace("-", "_")
    if mod_name not in available_demos():
        avail = ", ".join(available_demos()) or "none installed"
        raise LookupError(f"unknown demo {name!r} (available: {avail})")
    return importlib.import_module(f"hecrypt.demos.{mod_name}")


def available_suites(log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{SUITE: module}`` for every module of ``hecrypt.benchmarks`` that defines a suite.

    A module that fails to import is reported through ``log`` and left out.
    """
    suites: dict[str, Any] = {}
    for name in _submodules("hecrypt.benchmarks"):
        if name == "peers":
            continue
        try:
            mod = importlib.import_module(f"hecrypt.benchmarks.{name}")
        except Exception as exc:  # noqa: BLE001 - one broken suite must not hide the others
            if log is not None:
                log(f"warning: benchmark module {name!r} failed to import: {type(exc).__name__}: {exc}")
            continue
        if hasattr(mod, "SUITE") and callable(getattr(mod, "run", None)):
            suites[str(mod.SUITE)] = mod
    return suites


def _suite_order(names: list[str]) -> list[str]:
    first = [n for n in ("ring", "ring-tc", "smpc", "he", "agg", "train") if n in names]
    return first + sorted(n for n in names if n not in first)


def select_suites(requested: Sequence[str], available: dict[str, Any], device: str) -> list[str]:
    """Suites to run, in order: ``requested`` (all when empty) plus GPU companions of ``ring``."""
    if requested:
        unknown = [s for s in requested if s not in available]
        if unknown:
            raise LookupError(f"unknown suite(s) {', '.join(unknown)} (available: "
                              f"{', '.join(_suite_order(list(available))) or 'none'})")
        chosen = list(dict.fromkeys(requested))
    else:
        companions = {c for cs in GPU_COMPANIONS.values() for c in cs}
        chosen = [s for s in _suite_order(list(available)) if s not in companions]
    out: list[str] = []
    for s in chosen:
        if s not in out:
            out.append(s)
        if device == "cuda":
            for c in GPU_COMPANIONS.get(s, ()):
                if c in available and c not in out:
                    out.append(c)
    return out


# ======================================================================================
# commands
# ======================================================================================
def cmd_info(args: argparse.Namespace) -> int:
    d = info_dict(args.device)
    if args.json:
        _dump_json(d, args.json)
        if args.json != "-":
            print(format_info(d))
    else:
        print(format_info(d))
    return 0


def _demo_usage() -> str:
    lines = ["usage: hecrypt demo [NAME] [options]   (default NAME: xor)", "", "demos:"]
    for name in available_demos():
        try:
            mod = importlib.import_module(f"hecrypt.demos.{name}")
            helptext = getattr(mod, "HELP", "")
        except Exception as exc:  # noqa: BLE001
            helptext = f"(fails to import: {type(exc).__name__}: {exc})"
        lines.append(f"  {name:<12} {helptext}")
    if not available_demos():
        lines.append("  (none installed)")
    lines += ["", "options of one demo: hecrypt demo NAME --help"]
    return "\n".join(lines)


def cmd_demo(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(_demo_usage())
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
    else:
        name, rest = DEFAULT_DEMO, argv
    try:
        mod = load_demo(name)
    except LookupError as exc:
        print(f"hecrypt demo: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"hecrypt demo {getattr(mod, 'NAME', name)}",
                                     description=getattr(mod, "HELP", None))
    mod.add_arguments(parser)
    args = parser.parse_args(rest)
    rc = mod.run(args)
    return int(rc or 0)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the suites; progress (rows as they come, suite messages) goes to stderr, the final
    table to stdout (to stderr when the JSON goes to stdout)."""
    from .backend import resolve_device
    from .benchmarks import Bench, format_table

    table_out = sys.stderr if args.json == "-" else sys.stdout

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    suites = available_suites(log=progress)
    if args.list:
        for name in _suite_order(list(suites)):
            print(f"{name:<10} {getattr(suites[name], 'DESCRIPTION', '')}", file=table_out)
        return 0
    try:
        device = resolve_device(args.device)
        chosen = select_suites(args.suites, suites, device)
    except Exception as exc:  # LookupError, ValueError, DeviceUnavailableError
        print(f"hecrypt bench: {exc}", file=sys.stderr)
        return 2
    if not chosen:
        print("hecrypt bench: no benchmark suites found", file=sys.stderr)
        return 2
    progress(f"hecrypt {__version__} bench on {device}{' (quick)' if args.quick else ''}: {', '.join(chosen)}")
    progress(format_table([]))
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    timings: dict[str, float] = {}
    load_start = _loadavg()
    meta: dict[str, Any] | None = None

    def write_json(done: bool) -> None:
        nonlocal meta
        if meta is None:
            meta = info_dict(device)
        _dump_json({
            "hecrypt": __version__,
            "device": device,
            "quick": bool(args.quick),
            "suites": chosen,
            "complete": done,
            "suite_seconds": timings,
            "errors": errors,
            "machine": {k: meta.get(k) for k in ("python", "platform", "cpu_count", "numpy", "numba",
                                                 "cupy", "blas", "gpu")},
            "loadavg": {"start": load_start, "end": _loadavg()},
            "records": rows,
        }, args.json)

    restore_sigterm = _sigterm_as_interrupt()
    try:
        for name in chosen:
            bench = Bench(device=device, quick=args.quick, suite=name, log=progress)
            t0 = time.perf_counter()
            try:
                suites[name].run(bench)
            except KeyboardInterrupt:
                errors.append({"suite": name, "error": "interrupted"})
                rows.extend(bench.rows)
                break
            except Exception as exc:  # noqa: BLE001 - report it and go on with the next suite
                errors.append({"suite": name, "error": f"{type(exc).__name__}: {exc}"})
                progress(f"!! suite {name} failed: {type(exc).__name__}: {exc}")
                if args.verbose:
                    traceback.print_exc(file=sys.stderr)
            timings[name] = round(time.perf_counter() - t0, 3)
            rows.extend(bench.rows)
            if args.json and args.json != "-":  # a run stopped later (time limit) keeps what finished
                write_json(False)
    except KeyboardInterrupt:  # between two suites
        errors.append({"suite": "-", "error": "interrupted"})
    finally:
        restore_sigterm()
    print(format_table(rows), file=table_out, flush=True)
    if args.json:
        write_json(not any(e["error"] == "interrupted" for e in errors))
    if errors:
        print(f"hecrypt bench: {len(errors)} suite(s) failed: {', '.join(e['suite'] for e in errors)}",
              file=sys.stderr)
    return 1 if errors else 0


# ======================================================================================
# parser
# ======================================================================================
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hecrypt",
        description="GPU-accelerated crypto kernels for privacy-preserving ML (SMPC and CKKS).")
    p.add_argument("--version", action="version", version=f"hecrypt {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{info,demo,bench}")

    pi = sub.add_parser("info", help="versions, device choice, kernels and matmul paths")
    pi.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="write the report as JSON to FILE ('-' or no value: stdout)")
    pi.add_argument("--device", default=None, help="device to explain (auto|cpu|cuda; default $HECRYPT_DEVICE)")
    pi.set_defaults(func=cmd_info)

    pd = sub.add_parser("demo", help=f"run a demo (default: {DEFAULT_DEMO}); 'hecrypt demo --help' lists them",
                        add_help=False)
    pd.add_argument("demo_argv", nargs=argparse.REMAINDER)

    pb = sub.add_parser("bench", help="run benchmark suites against their baselines")
    pb.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run (default: all; see --list)")
    pb.add_argument("--quick", action="store_true", help="fewer sizes and repeats (a smoke run)")
    pb.add_argument("--json", metavar="FILE", help="write the records as JSON to FILE ('-': stdout)")
    pb.add_argument("--device", default=None, help="auto|cpu|cuda (default: $HECRYPT_DEVICE, else auto)")
    pb.add_argument("--list", action="store_true", help="list the suites and exit")
    pb.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failing suites")
    pb.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # ``demo`` passes everything after it to the demo's own parser (options may come first)
    if argv[:1] == ["demo"]:
        return cmd_demo(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `hecrypt info | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
