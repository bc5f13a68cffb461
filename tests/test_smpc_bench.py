"""Suite ``smpc`` of ``hecrypt bench``: runs end to end (tiny sizes, no peers venv)."""

from __future__ import annotations

from hecrypt.benchmarks import smpc
from hecrypt.benchmarks._harness import Bench


def test_smpc_suite_rows_without_crypten(monkeypatch, tmp_path):
    monkeypatch.setenv("PEERS_DIR", str(tmp_path))  # no peer venv there: numpy floor baseline
    monkeypatch.setattr(smpc, "SIZES", (16, 33))
    monkeypatch.setattr(smpc, "ELEMENTS", 1000)
    logs = []
    bench = Bench(device="cpu", quick=True, suite="smpc", log=logs.append)
    smpc.run(bench)
    assert [r["case"].split(" (")[0] for r in bench.rows] == [
        "shared matmul n=16", "shared matmul n=33", "shared mul 1e+03 elems"]
    for r in bench.rows:
        assert r["baseline"].startswith("numpy float64")
        assert r["hecrypt_s"] > 0 and r["online_s"] > 0 and r["offline_s"] > 0
        assert r["rounds"] == 1 and r["messages"] == 2 and r["bytes"] > 0 and r["offline_bytes"] > 0
        assert r["max_abs_err"] < 1e-3
        assert r["truncation"] == "local" and r["beaver"] == "doubled"
    n = 33
    row = bench.rows[1]
    assert row["bytes"] >= 2 * 2 * n * n * 8  # E and F shares, both directions
    assert any("CrypTen baseline unavailable" in m for m in logs)
    assert smpc.SUITE == "smpc" and smpc.DESCRIPTION
