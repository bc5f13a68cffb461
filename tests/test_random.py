"""The ChaCha20 keyed-stream CSPRNG: RFC 8439 vectors, stream semantics, uniformity."""

from __future__ import annotations

import json
import os
import pathlib
import pickle

import numpy as np
import pytest

from hecrypt.backend import get_backend
from hecrypt.ring import Z2_32, Z2_64, Stream, StreamFactory, Zq

VECTORS = json.loads((pathlib.Path(__file__).parent / "vectors" / "chacha20_rfc8439.json").read_text())


@pytest.mark.parametrize("vec", VECTORS["blocks"], ids=lambda v: v["name"])
def test_rfc8439_block_vectors(vec):
    cpu = get_backend("cpu")
    words = cpu.chacha20_keystream(bytes.fromhex(vec["key"]), bytes.fromhex(vec["nonce"]), vec["counter"], 1)
    assert words.dtype == np.uint32 and words.shape == (16,)
    assert words.tobytes().hex() == vec["keystream"]


@pytest.mark.parametrize("vec", VECTORS["blocks"], ids=lambda v: v["name"])
def test_numpy_fallback_matches_vectors_and_openssl(vec):
    from hecrypt.backend.cpu import chacha20_blocks_numpy

    key, nonce = bytes.fromhex(vec["key"]), bytes.fromhex(vec["nonce"])
    assert chacha20_blocks_numpy(key, nonce, vec["counter"], 1).tobytes().hex() == vec["keystream"]
    key, nonce = os.urandom(32), os.urandom(12)
    cpu = get_backend("cpu")
    for counter, n in ((0, 3), ((1 << 32) - 5, 5)):
        np.testing.assert_array_equal(chacha20_blocks_numpy(key, nonce, counter, n),
                                      cpu.chacha20_keystream(key, nonce, counter, n))


def test_block_counter_never_passes_2_32():
    cpu = get_backend("cpu")
    for counter, n in (((1 << 32) - 3, 4), (-1, 1), (0, -1)):
        with pytest.raises(ValueError, match="32-bit block counter"):
            cpu.chacha20_keystream(bytes(32), bytes(12), counter, n)


def test_stream_maps_to_rfc_keystream():
    vec = VECTORS["blocks"][0]
    nonce = bytes.fromhex(vec["nonce"])
    s = Stream(bytes.fromhex(vec["key"]), int.from_bytes(nonce, "little"), counter=1)
    assert s.random_bytes(64).hex() == vec["keystream"]
    assert s.counter == 2


def test_draws_advance_counter_and_never_repeat():
    s = Stream.from_seed("t")
    a = s.uniform(Z2_64, 5)  # 40 bytes -> 1 block
    assert s.counter == 1
    b = s.uniform(Z2_64, 9)  # 72 bytes -> 2 blocks
    assert s.counter == 3
    assert not np.intersect1d(a, b).size
    t = Stream.from_seed("t")
    np.testing.assert_array_equal(t.uniform(Z2_64, 5), a)  # same seed, same stream
    assert not np.array_equal(Stream.from_seed("u").uniform(Z2_64, 5), a)
    assert not np.array_equal(t.fork(1).uniform(Z2_64, 9), b)


def test_element_layout_is_little_endian_keystream():
    s1, s2 = Stream.from_seed(7), Stream.from_seed(7)
    raw = s1.random_bytes(64 * 4)
    u = s2.uniform(Z2_64, 32)
    assert u.tobytes() == raw
    s3 = Stream.from_seed(7)
    assert s3.uniform(Z2_32, 64).tobytes() == raw
    q = 501337
    s4 = Stream.from_seed(7)
    z = s4.uniform(Zq(q), 16)
    want = [int.from_bytes(raw[16 * i:16 * i + 16], "little") % q for i in range(16)]
    assert [int(v) for v in z] == want


def test_unseeded_streams_differ():
    a = Stream().uniform(Z2_64, 8)
    b = Stream().uniform(Z2_64, 8)
    assert not np.array_equal(a, b)
    assert StreamFactory().new_stream().uniform(Z2_64, 4).any()


def test_factory_streams_are_distinct():
    f = StreamFactory(seed=3)
    s1, s2 = f.new_stream(), f.new_stream()
    assert s1.stream_id != s2.stream_id
    assert not np.array_equal(s1.uniform(Z2_64, 8), s2.uniform(Z2_64, 8))


@pytest.mark.parametrize("q", [3, 501337, (1 << 61) - 1])
def test_zq_uniformity_chi_square(q):
    """Bucket Z_q samples into 16 equal ranges: chi-square must look uniform (p > 1e-4)."""
    from scipy import stats

    n = 64000
    z = Stream().uniform(Zq(q), n).astype(np.float64)
    assert z.max() < q
    buckets = 16 if q > 16 else q
    counts = np.bincount(np.minimum((z * buckets / q).astype(int), buckets - 1), minlength=buckets)
    _, p = stats.chisquare(counts)
    assert p > 1e-4, counts


def test_integers_bounds_and_spread():
    s = Stream()
    for bound in (1, 2, 6, 10, 1 << 40, (1 << 61) + 6):
        v = s.integers(bound, 4000)
        assert int(v.max()) < bound
        if bound > 1:
            assert len(np.unique(v)) > min(bound, 4000) // 3


def test_streams_refuse_pickle_and_bad_keys():
    with pytest.raises(TypeError):
        pickle.dumps(Stream())
    with pytest.raises(TypeError):
        pickle.dumps(StreamFactory())
    with pytest.raises(ValueError):
        Stream(b"short")
    with pytest.raises(ValueError):
        Stream(stream_id=-1)
    assert "key" not in repr(Stream()).lower() or "urandom" in repr(Stream())


def test_stream_exhaustion_is_an_error():
    s = Stream(counter=(1 << 32) - 1)
    s.uniform(Z2_64, 8)
    with pytest.raises(OverflowError):
        s.uniform(Z2_64, 1)
