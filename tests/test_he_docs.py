"""docs/he.md: the example runs and its claims hold."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "he.md"


def test_he_doc_example_runs(monkeypatch, capsys):
    monkeypatch.setenv("HECRYPT_DEVICE", "cpu")
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    assert blocks, "docs/he.md has no python example"
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "__he_doc__"})
    out = capsys.readouterr().out
    assert "level 1" in out and "bytes" in out


def test_he_doc_tables_match_the_code():
    from hecrypt.he import HE_STANDARD_128, PRESETS

    text = DOC.read_text(encoding="utf-8")
    for n, bits in HE_STANDARD_128.items():
        assert str(n) in text and str(bits) in text
    for name in PRESETS:
        assert f"`{name}`" in text
