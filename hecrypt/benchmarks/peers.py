"""Run the libraries hecrypt is measured against (PyTorch, CrypTen, TenSEAL, OpenFHE ...)
in their own virtual environments, outside hecrypt's process.

None of the peers is ever a dependency of hecrypt: they live in venvs built by the
project's ``peers/setup.sh`` under ``$PEERS_DIR`` (default ``~/.cache/hecrypt-peers``):

* ``venv``    -- Python 3.11: torch (CPU), crypten, tenseal, phe, mpyc
* ``venv310`` -- Python 3.10: openfhe

A benchmark suite hands :func:`run_peer` a Python snippet.  The snippet runs in the peer's
interpreter (isolated mode, a scratch working directory, so hecrypt itself is not
importable there) with these names predefined:

``ARGS``
    the ``args`` dict, passed as JSON on stdin (so only JSON-able values);
``emit(obj)``
    prints ``obj`` as the one JSON result line (call it once, at the end);
``median_time(fn, repeat=5, warmup=1, min_time=0.0)``
    median wall-clock seconds of ``fn()`` (same rules as :meth:`Bench.time`).

Example::

    from hecrypt.benchmarks.peers import run_peer

    res = run_peer('''
    import torch
    a = torch.randint(-2**63, 2**63 - 1, (ARGS["n"], ARGS["n"]), dtype=torch.int64)
    emit({"s": median_time(lambda: a @ a), "torch": torch.__version__})
    ''', {"n": 256})
    if res is None:
        print("torch unavailable:", last_reason())

Failures never raise: a missing venv, a failing import, a crash, a timeout or output
without a JSON line all give ``None``, and :func:`last_reason` (or :func:`peer_call`,
which returns ``(result, reason)``) says why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "ENV_VAR",
    "VENVS",
    "peers_dir",
    "peer_python",
    "peer_call",
    "run_peer",
    "last_reason",
    "peer_has",
]

ENV_VAR = "PEERS_DIR"
#: venv name -> what it is expected to hold (informative; see peers/setup.sh)
VENVS = {
    "venv": "Python 3.11: torch (CPU), crypten, tenseal, phe, mpyc",
    "venv310": "Python 3.10: openfhe",
}
_MARK = "@@HECRYPT_PEER_RESULT@@ "
_last_reason: str | None = None

_PRELUDE = r'''
import json as _json, sys as _sys, time as _time, statistics as _statistics
ARGS = _json.loads(_sys.stdin.read() or "{}")
def emit(obj):
    _sys.stdout.write("\n''' + _MARK + r'''" + _json.dumps(obj) + "\n")
    _sys.stdout.flush()
def median_time(fn, repeat=5, warmup=1, min_time=0.0):
    for _ in range(warmup):
        fn()
    ts, tot, i = [], 0.0, 0
    while (i < repeat or tot < min_time) and i < 1000:
        t0 = _time.perf_counter(); fn(); dt = _time.perf_counter() - t0
        ts.append(dt); tot += dt; i += 1
    return _statistics.median(ts)
'''


def peers_dir() -> Path:
    """The directory holding the peer venvs: ``$PEERS_DIR`` or ``~/.cache/hecrypt-peers``."""
    d = os.environ.get(ENV_VAR)
    return Path(d).expanduser() if d else Path.home() / ".cache" / "hecrypt-peers"


def peer_python(name: str = "venv") -> str | None:
    """Path of the peer venv ``name``'s Python interpreter, or ``None`` if it is not built.

    ``name`` may also be an absolute path to a venv directory.
    """
    if not isinstance(name, str) or not name:
        raise TypeError("venv name must be a non-empty string")
    base = Path(name).expanduser() if os.path.isabs(name) else peers_dir() / name
    for cand in (base / "bin" / "python", base / "Scripts" / "python.exe"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - non-POSIX
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _tail(text: str, n: int = 600) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def peer_call(script: str, args: dict[str, Any] | None = None, venv: str = "venv", *,
              timeout: float = 300.0, env: dict[str, str] | None = None,
              threads: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Run ``script`` in peer venv ``venv``; return ``(result, None)`` or ``(None, reason)``.

    ``result`` is the dict passed to ``emit`` (the last one, if called more than once).
    ``env`` adds environment variables; ``threads`` sets OMP/MKL/OpenBLAS thread counts.
    The whole process group is killed when ``timeout`` seconds pass.
    """
    if not isinstance(script, str):
        raise TypeError(f"script must be a str, got {type(script).__name__}")
    py = peer_python(venv)
    if py is None:
        return None, (f"peer venv {venv!r} not found under {peers_dir()} "
                      f"(build it with peers/setup.sh or set ${ENV_VAR})")
    try:
        payload = json.dumps(args or {})
    except (TypeError, ValueError) as exc:
        raise TypeError(f"peer args must be JSON-serialisable: {exc}") from None
    code = _PRELUDE + "\n" + textwrap.dedent(script)
    penv = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    penv.pop("VIRTUAL_ENV", None)
    if threads is not None:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            penv[k] = str(int(threads))
    if env:
        penv.update({str(k): str(v) for k, v in env.items()})
    with tempfile.TemporaryDirectory(prefix="hecrypt-peer-") as cwd:
        try:
            proc = subprocess.Popen([py, "-I", "-c", code], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=cwd, env=penv, start_new_session=True)
        except OSError as exc:
            return None, f"cannot start {py}: {exc}"
        try:
            out, err = proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return None, f"peer script timed out after {timeout:g} s in {venv!r}"
        except BaseException:
            _kill_group(proc)
            proc.communicate()
            raise
    if proc.returncode != 0:
        return None, f"peer script failed in {venv!r} (exit {proc.returncode}): {_tail(err)}"
    lines = [ln for ln in out.splitlines() if ln.startswith(_MARK)]
    if not lines:
        return None, f"peer script in {venv!r} printed no result (call emit(...)): {_tail(err or out)}"
    try:
        res = json.loads(lines[-1][len(_MARK):])
    except ValueError as exc:
        return None, f"peer result is not JSON: {exc}"
    if not isinstance(res, dict):
        return None, f"peer result must be a JSON object, got {type(res).__name__}"
    return res, None


def run_peer(script: str, args: dict[str, Any] | None = None, venv: str = "venv", *,
             timeout: float = 300.0, env: dict[str, str] | None = None, threads: int | None = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Like :func:`peer_call` but returns only the result; ``None`` on any failure.

    The reason for the last failure is kept in :func:`last_reason` and passed to ``log``.
    """
    global _last_reason
    res, reason = peer_call(script, args, venv, timeout=timeout, env=env, threads=threads)
    _last_reason = reason
    if reason and log is not None:
        log(f"peer: {reason}")
    return res


def last_reason() -> str | None:
    """Why the last :func:`run_peer` returned ``None`` (``None`` after a success)."""
    return _last_reason


def peer_has(module: str, venv: str = "venv", timeout: float = 120.0) -> str | None:
    """Version string of ``module`` importable in peer ``venv``, or ``None``."""
    res = run_peer(
        "import importlib\nm = importlib.import_module(ARGS['m'])\n"
        "emit({'version': str(getattr(m, '__version__', '?'))})",
        {"m": module}, venv, timeout=timeout)
    return None if res is None else res.get("version")


if __name__ == "__main__":  # pragma: no cover - manual check
    for name in VENVS:
        print(name, peer_python(name), file=sys.stdout)
