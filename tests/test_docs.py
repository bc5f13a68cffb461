"""README and docs: the commands are real, the code blocks parse (README's run), links resolve,
and .ci/run runs exactly the README's test command."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from hecrypt import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("_"))
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.S | re.M)


def _blocks(path: Path, langs: tuple[str, ...]) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8")) if lang in langs]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _readme_commands() -> tuple[str, str]:
    cmds = [ln.strip() for b in _blocks(ROOT / "README.md", ("bash", "sh")) for ln in b.splitlines()
            if ln.strip().startswith("python3 -m pip install")]
    demo = [c for c in cmds if "hecrypt demo" in c]
    test = [c for c in cmds if "pytest" in c]
    assert len(demo) == 1 and len(test) == 1, f"README must show one install+demo and one install+test command: {cmds}"
    return demo[0], test[0]


def test_readme_has_the_two_commands():
    demo, test = _readme_commands()
    assert demo.startswith("python3 -m pip install .") and demo.endswith("hecrypt demo")
    assert ".[test]" in test and test.endswith("python3 -m pytest -q")


def test_ci_runs_exactly_the_readme_test_command():
    _, test = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert test in lines, f".ci/run does not run the README's test command {test!r}"
    assert "HECRYPT_DEVICE=cpu" in ci
    assert not [ln for ln in lines if "pytest" in ln and ln != test], "CI runs another pytest command"


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_python_blocks_parse(path):
    for i, block in enumerate(_blocks(path, ("python", "py"))):
        try:
            ast.parse(block)
        except SyntaxError as exc:
            pytest.fail(f"{path.name} python block {i} does not parse: {exc}")


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_shell_blocks_parse(path):
    for i, block in enumerate(_blocks(path, ("bash", "sh", "shell"))):
        r = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{path.name} shell block {i}: {r.stderr}"


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_hecrypt_command_lines_parse(path, monkeypatch):
    """Every `hecrypt ...` line in a shell block is accepted by the CLI's parser."""
    parser = cli.build_parser()
    for block in _blocks(path, ("bash", "sh", "shell")):
        for line in block.splitlines():
            for part in re.split(r"&&|;|\|", line.split("#", 1)[0]):
                words = shlex.split(part)
                if not words or words[0] != "hecrypt":
                    continue
                args = words[1:]
                if args[:1] == ["demo"]:
                    rest = [a for a in args[1:] if not a.startswith("-")]
                    if rest and not args[1].startswith("-"):
                        assert args[1].replace("-", "_") in cli.available_demos(), f"{path.name}: unknown demo in {line!r}"
                    continue
                if "--help" in args or "--version" in args:
                    continue
                try:
                    parser.parse_args(args)
                except SystemExit:
                    pytest.fail(f"{path.name}: `{part.strip()}` is not a valid hecrypt command")


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_readme_python_runs(monkeypatch, capsys):
    monkeypatch.setenv("HECRYPT_DEVICE", "cpu")
    for block in _blocks(ROOT / "README.md", ("python",)):
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})


def test_architecture_numeric_contracts_match_the_code():
    """The exactness limits docs/architecture.md states are the ones the code uses."""
    from hecrypt.backend import cpu
    from hecrypt.backend.cuda import LIMB_MIN_WORK
    from hecrypt.backend.int8_limbs import int8_plan

    text = " ".join((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").split())

    def n(x: int) -> str:
        return f"{x:,}"

    assert cpu.KARATSUBA64_KMAX == 1024 and "K <= 1024 (`KARATSUBA64_KMAX`)" in text
    assert "22/20/22 bits" in text and "5 GEMMs" in text
    assert f"K <= {n(cpu.limb_plan(32).kmax)}" in text
    assert f"{n(cpu.limb_plan(64, 501337).kmax)} for q = 501337" in text
    assert cpu.limb_plan(64, (1 << 62) - 57).kmax == 1024 and "3 limbs: 1,024" in text
    p64, p32 = int8_plan(64), int8_plan(32)
    assert (p64.diagonals[0].k_exact, p64.diagonals[-1].k_exact) == (131071, 16383)
    assert f"({n(p64.diagonals[0].k_exact)} ... {n(p64.diagonals[-1].k_exact)})" in text
    assert (p64.products, p32.products) == (36, 10) and "36 int8 products" in text and "(10 for Z_2^32)" in text
    assert f"chunks K at {n(p64.k_chunk(True))}" in text and p32.k_chunk(True) is None
    assert f"(chunks of {n(p64.k_chunk(False))} / {n(p32.k_chunk(False))})" in text
    assert LIMB_MIN_WORK == 1 << 21 and "batch * M * N * K < 2^21" in text
