"""Pieces every demo shares: where text goes, device check, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable


def speaker(json_dest: str | None) -> Callable[..., None]:
    """``print`` to stdout, or to stderr when the JSON goes to stdout (``--json -``)."""
    out = sys.stderr if json_dest == "-" else sys.stdout

    def say(*parts: Any) -> None:
        print(*parts, file=out, flush=True)

    return say


def check_device(device: str | None, demo: str) -> int | None:
    """``None`` when ``device`` resolves, else print why and return exit status 2."""
    from ..backend import resolve_device
    from ..errors import DeviceUnavailableError

    try:
        resolve_device(device)
    except (DeviceUnavailableError, ValueError, TypeError) as exc:
        print(f"hecrypt demo {demo}: {exc}", file=sys.stderr)
        return 2
    return None


def emit_json(doc: dict[str, Any], dest: str) -> None:
    """Write ``doc`` as indented JSON to ``dest`` (``-`` = stdout)."""
    text = json.dumps(doc, indent=2)
    if dest == "-":
        print(text, flush=True)
    else:
        with open(dest, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
