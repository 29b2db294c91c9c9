"""What the generator does to the Verilog besides converting: identical modules kept once,
packed arrays without per-element names."""

from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimforge.hw.generate import dedupe_modules
from cimforge.hw.numerics import PackedArray


class _Unit(wiring.Component):
    """y = ~a (``invert``) or a + 1."""

    a: In(8)
    y: Out(8)

    def __init__(self, invert: bool):
        self.invert = invert
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(~self.a if self.invert else self.a + 1)
        return m


class _Top(wiring.Component):
    a: In(8)
    y: Out(24)

    def elaborate(self, platform):
        m = Module()
        parts = [_Unit(True), _Unit(True), _Unit(False)]
        for i, p in enumerate(parts):
            m.submodules[f"u{i}"] = p
            m.d.comb += [p.a.eq(self.a), self.y[8 * i: 8 * i + 8].eq(p.y)]
        return m


def _modules(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("module ")]


def test_identical_modules_are_kept_once():
    text = verilog.convert(_Top(), name="top", emit_src=False)
    assert len(_modules(text)) == 4
    out = dedupe_modules(text)
    names = _modules(out)
    assert len(names) == 3  # the two inverters are one module; the adder stays apart
    kept = next(n for n in names if n.endswith(".u0"))
    # both instances name the kept module, under their own instance names
    assert f"{kept}  u0 (" in out and f"{kept}  u1 (" in out
    assert dedupe_modules(out) == out


def test_different_modules_are_left_alone():
    text = verilog.convert(_Unit(False), name="adder", emit_src=False)
    assert dedupe_modules(text) == text


def test_packed_array_has_no_element_names():
    class Wide(wiring.Component):
        def __init__(self, shape):
            super().__init__({"a": In(shape), "y": Out(shape)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.y.eq(self.a)
            return m

    from amaranth.lib import data

    plain = verilog.convert(Wide(data.ArrayLayout(4, 64)), name="w", emit_src=False)
    packed = verilog.convert(Wide(PackedArray(4, 64)), name="w", emit_src=False)
    assert "a[63]" in plain and "a[63]" not in packed
    assert len(packed) < len(plain) / 4
    # elements index as in any ArrayLayout
    v = Signal(PackedArray(4, 64))
    assert v[3].shape().width == 4


def test_generate_is_byte_for_byte_reproducible(design_manifest, tmp_path):
    """A fresh generation equals the one the session's fixture made (in another process when
    pytest-xdist runs it, or an earlier session), file by file; the manifest differs only in
    the config's source path."""
    import json
    from pathlib import Path

    from cimforge.config import load_config
    from cimforge.hw.generate import generate

    cached = design_manifest("tiny-blocks")
    fresh = tmp_path / "rtl"
    config = Path(__file__).resolve().parents[1] / "data" / "configs" / "tiny-blocks.toml"
    generate(load_config(str(config)), fresh)
    a, b = json.loads(cached.read_text()), json.loads((fresh / "manifest.json").read_text())
    a.pop("config_source"), b.pop("config_source")
    assert a == b
    names = sorted(p.name for p in cached.parent.iterdir() if p.name != "manifest.json")
    assert names == sorted(p.name for p in fresh.iterdir() if p.name != "manifest.json")
    for name in names:
        assert (cached.parent / name).read_bytes() == (fresh / name).read_bytes(), name
