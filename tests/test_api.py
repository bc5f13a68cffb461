"""The curated top-level API: lazy subpackages, docstring examples."""

from __future__ import annotations

import doctest
import subprocess
import sys

import hecrypt
import hecrypt.ring.rings


def test_top_level_names_resolve():
    for name in hecrypt.__all__:
        assert getattr(hecrypt, name) is not None, name
    assert hecrypt.SMPCContext is hecrypt.smpc.SMPCContext
    assert hecrypt.CKKSContext is hecrypt.he.CKKSContext
    try:
        hecrypt.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("unknown attribute did not raise")


def test_import_is_light():
    code = ("import sys, hecrypt; bad = [m for m in ('cupy', 'numba', 'hecrypt.smpc', 'hecrypt.he') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_docstring_examples_run():
    for mod in (hecrypt, hecrypt.ring.rings):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
