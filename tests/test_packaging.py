"""The wheel: built from a copy of the source tree, installed (non-editable) into a fresh
virtual environment, it carries every module and the kernel sources, and `hecrypt info`
run from the installed console script finds them.

The venv reuses this interpreter's site-packages for numpy/numba (``--system-site-packages``,
nothing downloaded) and installs the wheel with ``--no-deps --no-index``; the installed copy
must shadow any editable install of the source tree, which the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.build

ROOT = Path(__file__).resolve().parents[1]
KERNEL_PATTERNS = ("*.cu", "common/*.cuh")


def _setuptools_ok() -> bool:
    try:
        from importlib.metadata import version

        return int(version("setuptools").split(".")[0]) >= 77
    except Exception:
        return False


def _copy_tree(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    for name in ("hecrypt", "kernels"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)


def _kernel_files() -> list[str]:
    out = set()
    for pat in KERNEL_PATTERNS:
        out.update(str(p.relative_to(ROOT / "kernels")) for p in (ROOT / "kernels").glob(pat))
    return sorted(out)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "HECRYPT_")) and k != "VIRTUAL_ENV"}  # no overrides of kernel dirs
    env["HECRYPT_DEVICE"] = "cpu"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    _copy_tree(src)
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if _setuptools_ok():
        cmd.insert(4, "--no-build-isolation")  # offline and fast where setuptools>=77 is installed
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_clean_env())
    assert r.returncode == 0, f"wheel build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    (whl,) = out.glob("hecrypt-*.whl")
    return whl


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    # every Python module of the package
    for p in (ROOT / "hecrypt").rglob("*.py"):
        if "__pycache__" in p.parts:
            continue
        rel = p.relative_to(ROOT).as_posix()
        assert rel in names, f"{rel} missing from the wheel (a package without __init__.py?)"
    # every kernel source, as package data of hecrypt._kernels
    for k in _kernel_files():
        assert f"hecrypt/_kernels/{k}" in names, f"kernel file {k} missing from the wheel"
    assert not any(n.startswith(("kernels/", "tests/", "bench/")) for n in names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Requires-Dist: numpy" in text and "Requires-Dist: numba" in text
    assert "cupy" not in "".join(line for line in text.splitlines()
                                 if line.startswith("Requires-Dist:") and "extra ==" not in line)
    ep = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "hecrypt = hecrypt.cli:main" in zipfile.ZipFile(wheel).read(ep).decode()


def test_installed_wheel_finds_kernels_and_runs_info(wheel, tmp_path):
    venv = tmp_path / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    env = _clean_env()
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "elsewhere"  # not the source tree
    work.mkdir()
    r = subprocess.run([str(bindir / "hecrypt"), "info", "--json"], capture_output=True, text=True,
                       timeout=180, cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout)
    src_dir = Path(info["kernels"]["source_dir"]).resolve()
    assert src_dir.is_relative_to(venv.resolve()), f"kernels found outside the venv: {src_dir}"
    assert src_dir.name == "_kernels"
    assert sorted(info["kernels"]["sources"]) == sorted(k for k in _kernel_files() if k.endswith(".cu"))
    assert sorted(info["kernels"]["headers"]) == sorted(k for k in _kernel_files() if k.endswith(".cuh"))
    assert info["device"] == "cpu"
    probe = ("import hecrypt, numpy as np, json; from hecrypt import Z2_64; "
             "a = np.arange(6, dtype=np.uint64); "
             "print(json.dumps({'file': hecrypt.__file__, 'v': hecrypt.__version__, "
             "'add': Z2_64.add(a, a).tolist()}))")
    r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=120, cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout)
    assert Path(d["file"]).resolve().is_relative_to(venv.resolve())  # the wheel, not the source tree
    assert d["add"] == [0, 2, 4, 6, 8, 10]


def test_module_level_imports_are_core_dependencies():
    """Every third-party module imported at module level by hecrypt is a core dependency
    (optional ones: CuPy, matplotlib, scikit-learn ... must be imported inside functions)."""
    import ast

    core = {"numpy", "numba", "llvmlite", "cryptography", "tqdm"}  # llvmlite comes with numba
    bad = []
    for p in (ROOT / "hecrypt").rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only (not inside functions)
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                if top not in sys.stdlib_module_names and top != "hecrypt" and top not in core:
                    bad.append(f"{p.relative_to(ROOT)}: import {n}")
    assert not bad, "module-level imports of optional packages:\n" + "\n".join(bad)
