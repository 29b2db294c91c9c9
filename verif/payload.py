"""Pack and unpack stream payloads by the field table in a generated design's manifest.

Amaranth flattens a ``data.Layout`` payload into one Verilog vector (``i_stream__payload``);
the manifest records each field's bit offset, width and signedness, so the benches bind to
the generated artifact itself rather than re-deriving the layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["PayloadCodec"]


class PayloadCodec:
    """Fields: dicts with ``name``, ``offset``, ``width``, ``signed`` and, for arrays of
    scalars, ``count`` and ``stride``."""

    def __init__(self, fields: Sequence[dict[str, Any]]):
        self._fields = list(fields)
        self.width = max(
            (f["offset"] + f["stride"] * (f.get("count", 1) - 1) + f["width"])
            if "count" in f else f["offset"] + f["width"]
            for f in self._fields
        )

    @classmethod
    def for_port(cls, block_manifest: dict[str, Any], port: str) -> PayloadCodec:
        for p in block_manifest["ports"]:
            if p["name"] == port:
                return cls(p["fields"])
        raise KeyError(f"port {port!r} not in manifest of {block_manifest['top']}")

    @staticmethod
    def _encode(value: int, width: int, signed: bool, name: str) -> int:
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if not lo <= value <= hi:
            raise ValueError(f"{name} = {value} does not fit {'s' if signed else 'u'}{width}")
        return value & ((1 << width) - 1)

    @staticmethod
    def _decode(raw: int, width: int, signed: bool) -> int:
        if signed and raw >> (width - 1):
            return raw - (1 << width)
        return raw

    def pack(self, **values: Any) -> int:
        word = 0
        for f in self._fields:
            v = values[f["name"]]
            if "count" in f:
                if len(v) != f["count"]:
                    raise ValueError(f"{f['name']} needs {f['count']} elements, got {len(v)}")
                for i, e in enumerate(v):
                    raw = self._encode(int(e), f["width"], f["signed"], f"{f['name']}[{i}]")
                    word |= raw << (f["offset"] + i * f["stride"])
            else:
                word |= self._encode(int(v), f["width"], f["signed"], f["name"]) << f["offset"]
        return word

    def unpack(self, word: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self._fields:
            mask = (1 << f["width"]) - 1
            if "count" in f:
                out[f["name"]] = [
                    self._decode((word >> (f["offset"] + i * f["stride"])) & mask,
                                 f["width"], f["signed"])
                    for i in range(f["count"])
                ]
            else:
                out[f["name"]] = self._decode((word >> f["offset"]) & mask, f["width"], f["signed"])
        return out
