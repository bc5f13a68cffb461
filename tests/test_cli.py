"""The ``hecrypt`` command: info, demo dispatch, bench (with stand-in demos/suites), ring suite."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hecrypt
import hecrypt.benchmarks
import hecrypt.demos
from hecrypt import cli
from hecrypt.backend import cuda_status
from hecrypt.benchmarks import Bench

REQUIRED_KEYS = {"case", "device", "hecrypt_s", "baseline", "baseline_s", "speedup"}
NO_GPU = not cuda_status()[0]


# --------------------------------------------------------------------------------------
# fixtures: stand-in demo and suite modules placed on the packages' search path
# --------------------------------------------------------------------------------------
@pytest.fixture
def fake_demo(tmp_path, monkeypatch):
    d = tmp_path / "demos"
    d.mkdir()
    (d / "zz_fake_demo.py").write_text(textwrap.dedent("""
        NAME = "zz-fake-demo"
        HELP = "stand-in demo for the CLI tests"
        CALLS = []
        def add_arguments(parser):
            parser.add_argument("--steps", type=int, default=5)
            parser.add_argument("--tag", default="none")
        def run(args):
            CALLS.append((args.steps, args.tag))
            print(f"fake demo ran steps={args.steps} tag={args.tag}")
            return 3 if args.tag == "fail" else 0
    """))
    monkeypatch.setattr(hecrypt.demos, "__path__", list(hecrypt.demos.__path__) + [str(d)])
    yield "zz_fake_demo"
    sys.modules.pop("hecrypt.demos.zz_fake_demo", None)


@pytest.fixture
def fake_suites(tmp_path, monkeypatch):
    d = tmp_path / "benchmarks"
    d.mkdir()
    (d / "zz_ok.py").write_text(textwrap.dedent("""
        SUITE = "zz-ok"
        DESCRIPTION = "stand-in suite"
        def run(bench):
            t = bench.time(lambda: sum(range(1000)), repeat=2)
            bench.record("zz sum n=1000", t, "python sum", 2 * t, quick=bench.quick, extra_key=7)
    """))
    (d / "zz_bad.py").write_text(textwrap.dedent("""
        SUITE = "zz-bad"
        DESCRIPTION = "stand-in suite that fails after one row"
        def run(bench):
            bench.record("zz before failure", 1e-3)
            raise RuntimeError("zz suite exploded")
    """))
    (d / "zz_broken.py").write_text("raise ImportError('zz broken module')\n")
    (d / "zz_helper.py").write_text("X = 1  # no SUITE: not a suite\n")
    monkeypatch.setattr(hecrypt.benchmarks, "__path__", list(hecrypt.benchmarks.__path__) + [str(d)])
    yield
    for m in ("zz_ok", "zz_bad", "zz_broken", "zz_helper"):
        sys.modules.pop(f"hecrypt.benchmarks.{m}", None)


# --------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------
def test_info_text(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"hecrypt {hecrypt.__version__}" in out
    for word in ("numpy", "numba", "cupy", "auto device", "kernels", "prebuilt", "matmul (cpu)", "K <= 1024"):
        assert word in out


def test_info_json_file(tmp_path, monkeypatch):
    monkeypatch.delenv("HECRYPT_DEVICE", raising=False)
    path = tmp_path / "info.json"
    assert cli.main(["info", "--json", str(path)]) == 0
    d = json.loads(path.read_text())
    assert d["hecrypt"] == hecrypt.__version__
    assert d["numpy"] == np.__version__
    assert d["python"].endswith(".".join(map(str, sys.version_info[:3])))
    assert d["auto_device"] in ("cpu", "cuda") and d["auto_reason"]
    assert d["cuda"]["usable"] == cuda_status()[0]
    if NO_GPU:
        assert d["auto_device"] == "cpu" and "gpu" not in d
    k = d["kernels"]
    assert k["source_dir"] is not None
    assert "prebuilt" in k
    z64 = d["matmul_paths"]["cpu"]["Z2_64"]
    assert "K <= 1024" in z64 and "22-bit" in z64
    assert "cryptography" in d
    gpu_paths = d["matmul_paths"]["cuda"]
    if NO_GPU:
        assert gpu_paths.startswith("not available: ")
    else:  # the GPU report names each ring's path and the int8 path's self-check outcome
        assert gpu_paths["available"] is True and gpu_paths["Z_2^64"]["small (batch*M*N*K < 2^21)"] == "simt"
        assert gpu_paths["int8-tc"].startswith(("enabled", "disabled", "unavailable"))
        assert gpu_paths["Z_2^64"]["large"] == ("int8-tc" if gpu_paths["int8-tc"].startswith("enabled")
                                                else "limb-f64")


def test_info_json_stdout(capsys):
    assert cli.main(["info", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"hecrypt", "auto_device", "kernels", "matmul_paths"} <= set(d)


@pytest.mark.skipif(not NO_GPU, reason="checks the no-GPU report")
def test_info_reports_unusable_cuda_request(monkeypatch, capsys):
    monkeypatch.setenv("HECRYPT_DEVICE", "cuda")
    assert cli.main(["info"]) == 0  # info reports, it does not fail
    out = capsys.readouterr().out
    assert "HECRYPT_DEVICE=cuda" in out and "DeviceUnavailableError" in out


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert hecrypt.__version__ in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "info" in capsys.readouterr().out


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "hecrypt.cli", "info", "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hecrypt"] == hecrypt.__version__


# --------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------
def test_demo_dispatch_by_name(fake_demo, capsys):
    assert fake_demo in cli.available_demos()
    assert cli.main(["demo", fake_demo, "--steps", "17", "--tag", "x"]) == 0
    assert "steps=17 tag=x" in capsys.readouterr().out
    assert cli.main(["demo", "zz-fake-demo", "--tag", "fail"]) == 3  # '-' reads as '_'; exit status passes on


def test_demo_default_name_takes_options_first(fake_demo, monkeypatch, capsys):
    monkeypatch.setattr(cli, "DEFAULT_DEMO", fake_demo)
    assert cli.main(["demo", "--steps", "4"]) == 0
    assert "steps=4 tag=none" in capsys.readouterr().out
    assert cli.main(["demo"]) == 0
    assert "steps=5" in capsys.readouterr().out


def test_demo_help_lists_demos(fake_demo, capsys):
    assert cli.main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert fake_demo in out and "stand-in demo" in out
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", fake_demo, "--help"])
    assert e.value.code == 0
    assert "--steps" in capsys.readouterr().out


def test_demo_unknown_and_bad_option(fake_demo, capsys):
    assert cli.main(["demo", "no-such-demo-zz"]) == 2
    err = capsys.readouterr().err
    assert "unknown demo" in err and fake_demo in err
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", fake_demo, "--steps", "notanint"])
    assert e.value.code == 2


# --------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------
def test_bench_list_skips_broken_and_helpers(fake_suites, capsys):
    assert cli.main(["bench", "--list"]) == 0
    cap = capsys.readouterr()
    assert "zz-ok" in cap.out and "zz-bad" in cap.out and "ring" in cap.out
    assert "zz_helper" not in cap.out
    assert "zz broken module" in cap.err  # a module that fails to import is reported, not fatal


def test_bench_runs_suite_prints_table_and_json(fake_suites, tmp_path, capsys):
    path = tmp_path / "b.json"
    assert cli.main(["bench", "zz-ok", "--quick", "--device", "cpu", "--json", str(path)]) == 0
    cap = capsys.readouterr()
    assert "zz sum n=1000" in cap.out and "speedup" in cap.out and "2.00x" in cap.out
    d = json.loads(path.read_text())
    assert d["device"] == "cpu" and d["quick"] is True and d["suites"] == ["zz-ok"] and d["errors"] == []
    (row,) = d["records"]
    assert REQUIRED_KEYS <= set(row)
    assert row["suite"] == "zz-ok" and row["extra_key"] == 7 and row["quick"] is True
    assert row["speedup"] == pytest.approx(2.0)
    assert d["machine"]["numpy"] == np.__version__


def test_bench_json_to_stdout_keeps_stdout_clean(fake_suites, capsys):
    assert cli.main(["bench", "zz-ok", "--quick", "--json", "-"]) == 0
    cap = capsys.readouterr()
    d = json.loads(cap.out)
    assert d["records"][0]["case"] == "zz sum n=1000"
    assert "zz sum n=1000" in cap.err  # table went to stderr


def test_bench_failing_suite_reported_others_run(fake_suites, tmp_path, capsys):
    path = tmp_path / "b.json"
    assert cli.main(["bench", "zz-bad", "zz-ok", "--quick", "--json", str(path)]) == 1
    d = json.loads(path.read_text())
    assert [e["suite"] for e in d["errors"]] == ["zz-bad"] and "exploded" in d["errors"][0]["error"]
    assert [r["case"] for r in d["records"]] == ["zz before failure", "zz sum n=1000"]
    assert "zz-bad" in capsys.readouterr().err


def test_bench_sigterm_keeps_measured_rows(tmp_path):
    """`timeout` stopping a run (SIGTERM) still prints the table and writes the JSON: the
    suites that finished, the rows of the interrupted one, ``complete: false``."""
    d = tmp_path / "pkg"
    d.mkdir()
    (d / "zz_first.py").write_text(textwrap.dedent("""
        SUITE = "zz-first"
        DESCRIPTION = "finishes"
        def run(bench):
            bench.record("zz first row", 1e-3, "base", 2e-3)
    """))
    (d / "zz_hang.py").write_text(textwrap.dedent("""
        import os, signal, time
        SUITE = "zz-hang"
        DESCRIPTION = "one row, then waits until it is killed"
        def run(bench):
            bench.record("zz row before the kill", 1e-3)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
            bench.record("zz never reached", 1e-3)
    """))
    path = tmp_path / "b.json"
    code = textwrap.dedent(f"""
        import sys, hecrypt.benchmarks
        from hecrypt import cli
        hecrypt.benchmarks.__path__.append({str(d)!r})
        sys.exit(cli.main(["bench", "zz-first", "zz-hang", "--device", "cpu", "--json", {str(path)!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=25)
    assert r.returncode == 1, r.stderr
    assert "zz row before the kill" in r.stdout and "zz never reached" not in r.stdout
    out = json.loads(path.read_text())
    assert out["complete"] is False
    assert [row["case"] for row in out["records"]] == ["zz first row", "zz row before the kill"]
    assert out["errors"] == [{"suite": "zz-hang", "error": "interrupted"}]


def test_bench_json_written_after_each_suite(fake_suites, tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    seen = []
    real = cli._dump_json

    def spy(obj, p):
        seen.append((obj["complete"], [r["case"] for r in obj["records"]]))
        real(obj, p)

    monkeypatch.setattr(cli, "_dump_json", spy)
    assert cli.main(["bench", "zz-ok", "zz-bad", "--quick", "--device", "cpu", "--json", str(path)]) == 1
    assert seen[0] == (False, ["zz sum n=1000"])
    assert seen[-1] == (True, ["zz sum n=1000", "zz before failure"])
    assert json.loads(path.read_text())["complete"] is True


def test_bench_unknown_suite_and_unusable_device(fake_suites, capsys):
    assert cli.main(["bench", "zz-nope"]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert cli.main(["bench", "zz-ok", "--device", "tpu"]) == 2
    if NO_GPU:
        assert cli.main(["bench", "zz-ok", "--device", "cuda"]) == 2
        assert "cuda" in capsys.readouterr().err


def test_select_suites_gpu_companions():
    avail = {"ring": 1, "ring-tc": 2, "smpc": 3, "he": 4, "zz": 5}
    assert cli.select_suites(["ring"], avail, "cpu") == ["ring"]
    assert cli.select_suites(["ring"], avail, "cuda") == ["ring", "ring-tc"]
    assert cli.select_suites(["ring-tc"], avail, "cpu") == ["ring-tc"]
    assert cli.select_suites([], avail, "cpu") == ["ring", "smpc", "he", "zz"]
    assert cli.select_suites([], avail, "cuda") == ["ring", "ring-tc", "smpc", "he", "zz"]
    assert cli.select_suites(["he", "he"], avail, "cpu") == ["he"]
    with pytest.raises(LookupError):
        cli.select_suites(["nope"], avail, "cpu")


# --------------------------------------------------------------------------------------
# the ring suite's cases at tiny sizes (the full suite is run by `hecrypt bench ring`)
# --------------------------------------------------------------------------------------
def test_ring_suite_cases_small(rng, tmp_path, monkeypatch):
    from hecrypt.benchmarks import ring as ring_suite

    monkeypatch.setenv("PEERS_DIR", str(tmp_path / "no-peers"))  # no torch: its row is left out
    bench = Bench(device="cpu", quick=True, suite="ring")
    ring_suite.bench_elementwise(bench, rng, 1 << 10)
    ring_suite.bench_truncate(bench, rng, 1 << 10)
    ring_suite.bench_matmul(bench, rng, [7, 33])
    ring_suite.bench_matmul_other_rings(bench, rng, 9)
    ring_suite.bench_csprng(bench, 1 << 10)
    cases = [r["case"] for r in bench.rows]
    assert "add Z2_64 n=2^10" in cases and "matmul Z2_64 n=33" in cases
    assert not any("torch" in c for c in cases)
    for r in bench.rows:
        assert REQUIRED_KEYS <= set(r)
        assert r["hecrypt_s"] > 0
        if "exact" in r:
            assert r["exact"] is True
    assert sum(1 for r in bench.rows if r.get("exact")) == 4
    assert ring_suite.SUITE == "ring" and ring_suite.DESCRIPTION


# --------------------------------------------------------------------------------------
# bench/gpu_check.sh (the GPU machine's script) on a machine without a GPU
# --------------------------------------------------------------------------------------
GPU_CHECK = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"


def test_gpu_check_script_parses():
    r = subprocess.run(["bash", "-n", str(GPU_CHECK)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not NO_GPU, reason="checks the no-GPU exit; a GPU machine runs the whole script instead")
def test_gpu_check_without_gpu_stops_cleanly(tmp_path):
    """Runs from a copy-free source tree with no `hecrypt` console script on the PATH (only
    python3 and the system tools): reports the device, writes info.json, exits 2."""
    binp = tmp_path / "bin"
    binp.mkdir()
    (binp / "python3").symlink_to(sys.executable)
    out = tmp_path / "out"
    env = {"PATH": f"{binp}:/usr/bin:/bin", "OUT": str(out), "HOME": str(tmp_path),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    r = subprocess.run(["bash", str(GPU_CHECK)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no usable CUDA device" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "info.json"]
    info = json.loads((out / "info.json").read_text())
    assert info["cuda"]["usable"] is False and info["hecrypt"] == hecrypt.__version__
    assert "no usable CUDA device" in (out / "gpu_check.log").read_text()
