"""hecrypt.benchmarks.peers: running snippets in a peer venv, with a fake venv (this interpreter)."""

from __future__ import annotations

import os
import venv

import pytest

from hecrypt.benchmarks import peers


@pytest.fixture
def fake_peers(tmp_path, monkeypatch):
    """A PEERS_DIR whose ``venv`` is a bare venv of the current interpreter (no hecrypt in it)."""
    venv.create(tmp_path / "venv", with_pip=False, symlinks=True)
    monkeypatch.setenv(peers.ENV_VAR, str(tmp_path))
    return tmp_path


def test_peer_python_found_and_missing(fake_peers):
    assert peers.peers_dir() == fake_peers
    assert peers.peer_python("venv") == str(fake_peers / "venv" / "bin" / "python")
    assert peers.peer_python("venv310") is None
    with pytest.raises(TypeError):
        peers.peer_python("")


def test_run_peer_roundtrip_args_and_timing(fake_peers, rng):
    n = int(rng.integers(1, 10**9))
    res = peers.run_peer("""
        print("library noise on stdout")
        t = median_time(lambda: sum(range(100)), repeat=3)
        emit({"twice": 2 * ARGS["n"], "t": t, "x": ARGS["x"]})
    """, {"n": n, "x": [1.5, "s"]})
    assert res is not None, peers.last_reason()
    assert res["twice"] == 2 * n and res["x"] == [1.5, "s"]
    assert res["t"] > 0
    assert peers.last_reason() is None


def test_run_peer_is_isolated_from_hecrypt(fake_peers, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.getcwd())  # the repo root: must not leak into the peer
    res = peers.run_peer("""
        import importlib.util
        emit({"found": importlib.util.find_spec("hecrypt") is not None})
    """)
    assert res == {"found": False}


@pytest.mark.parametrize("script,needle", [
    ("raise SystemExit(3)", "exit 3"),
    ("raise RuntimeError('boom-xyz')", "boom-xyz"),
    ("print('{\"a\": 1}')", "no result"),
    ("emit([1, 2])", "JSON object"),
])
def test_run_peer_failures_give_none_and_reason(fake_peers, script, needle):
    logged = []
    assert peers.run_peer(script, log=logged.append) is None
    assert needle in peers.last_reason()
    assert logged and needle in logged[0]
    res, reason = peers.peer_call(script)
    assert res is None and needle in reason


def test_run_peer_timeout_and_missing_venv(fake_peers):
    assert peers.run_peer("import time; time.sleep(30)", timeout=0.5) is None
    assert "timed out" in peers.last_reason()
    assert peers.run_peer("emit({})", venv="venv310") is None
    assert "not found" in peers.last_reason()


def test_run_peer_threads_env_and_bad_args(fake_peers):
    res = peers.run_peer("import os\nemit({'t': os.environ['OMP_NUM_THREADS'], 'e': os.environ['HX']})",
                         threads=1, env={"HX": "7"})
    assert res == {"t": "1", "e": "7"}
    with pytest.raises(TypeError):
        peers.run_peer("emit({})", {"x": object()})
    with pytest.raises(TypeError):
        peers.run_peer(b"emit({})")


def test_peer_has(fake_peers):
    assert peers.peer_has("json") is not None
    assert peers.peer_has("no_such_module_hx") is None
