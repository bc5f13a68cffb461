"""Suite ``he`` runs end to end (on a tiny ring, without the TenSEAL subprocess)."""

from __future__ import annotations

from hecrypt.benchmarks import Bench
from hecrypt.benchmarks import he as he_bench


def test_he_suite_smoke(monkeypatch):
    monkeypatch.setattr(he_bench, "CASES", (("tiny", 256, (40, 30, 30, 40), 30),))
    monkeypatch.setattr(he_bench, "SECURITY", None)
    monkeypatch.setattr(he_bench, "_tenseal", lambda *a, **k: None)
    bench = Bench(device="cpu", quick=True, suite="he")
    he_bench.run(bench)
    cases = [r["case"] for r in bench.rows]
    for want in ("keygen", "encode+encrypt", "add", "mul+relin+rescale", "rotate", "decrypt", "ntt",
                 "ciphertext bytes", "rot(x*y,1)+x"):
        assert any(want in c for c in cases), want
    timed = [r for r in bench.rows if r["case"].endswith(("add", "rotate", "decrypt"))]
    assert timed and all(r["hecrypt_s"] > 0 and r["cpu_s"] >= 0 and r["baseline"] is None for r in timed)
    size = next(r for r in bench.rows if "ciphertext bytes" in r["case"])
    assert size["bytes"] == 56 + 2 * 256 * 100 // 8 and size["seeded_bytes"] < size["bytes"]
    agree = next(r for r in bench.rows if "rot(x*y,1)+x" in r["case"])
    assert agree["max_err"] < 1e-3
