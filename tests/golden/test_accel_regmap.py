"""The accelerator's register map: regions that pack without overlap, the generated documents
(Markdown in the docs, C header, Python constants) all from the one description; the cycle
model's lower bounds."""

import shutil
import subprocess
from pathlib import Path

import pytest

from cimforge.config import load_config
from cimforge.golden.accel_regmap import (
    CONTROL,
    ERROR_BITS,
    ID,
    doc_block,
    register_map,
    to_c_header,
    to_python,
)
from cimforge.golden.accel_timing import AcceleratorTiming
from cimforge.golden.mapping import map_model

TINY = load_config("tiny")
DOC = Path(__file__).resolve().parents[2] / "docs" / "hw-accelerator.md"


@pytest.mark.parametrize("config", ["tiny", "minilm"])
def test_regions_are_aligned_and_disjoint(config):
    cfg = load_config(config)
    rm = register_map(cfg, map_model(cfg))
    spans = sorted((r.base, r.end, r.name) for r in rm.regions)
    for r in rm.regions:
        assert r.words & (r.words - 1) == 0 and r.base % r.words == 0, r
    for (_, end, a), (base, _, b) in zip(spans, spans[1:]):
        assert end <= base, (a, b)
    assert rm.words == spans[-1][1] and rm.addr_bits == (rm.words - 1).bit_length()


def test_the_docs_carry_the_generated_map():
    text = DOC.read_text()
    start, end = "<!-- regmap:tiny -->\n", "<!-- /regmap:tiny -->"
    block = text[text.index(start) + len(start):text.index(end)]
    assert block == doc_block(register_map(TINY, map_model(TINY)), TINY)


def test_python_constants():
    rm = register_map(TINY, map_model(TINY))
    ns: dict = {}
    exec(to_python(rm, TINY), ns)  # noqa: S102 - our own generated module
    assert ns["ID"] == ID and ns["ERROR_BITS"] == ERROR_BITS
    control = rm.region("control").base
    assert ns["CONTROL"] == {n: 4 * (control + w) for n, (w, _, _) in CONTROL.items()}
    assert {n: (v["base"], v["bytes"]) for n, v in ns["REGIONS"].items()} == {
        r.name: (4 * r.base, 4 * r.words) for r in rm.regions}


def test_c_header_compiles(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler (needed by Verilator's builds anyway)"
    rm = register_map(TINY, map_model(TINY))
    (tmp_path / "regs.h").write_text(to_c_header(rm, TINY))
    (tmp_path / "use.c").write_text(
        '#include "regs.h"\n#include <stdint.h>\n'
        "uint32_t f(void) { return CIMFORGE_ID_VALUE + CIMFORGE_REG_STATUS "
        "+ CIMFORGE_L0_QKV_BASE + CIMFORGE_L0_QKV_BIAS_WORD + CIMFORGE_ERROR_TLAST; }\n")
    subprocess.run([cc, "-fsyntax-only", "-Wall", "-Werror", "use.c"], cwd=tmp_path, check=True)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 16])
def test_latency_is_never_below_its_bounds(n):
    tm = AcceleratorTiming(TINY)
    latency = tm.schedule(n).latency
    b = tm.bounds(n)
    assert max(b.work.values()) <= b.bound <= b.tight <= latency
    assert b.critical_path <= b.bound


DECODER = load_config("tiny-decoder")


@pytest.mark.parametrize("n, base", [(1, 0), (1, 7), (1, 15), (4, 0), (3, 9), (16, 0)])
def test_decoder_latency_is_never_below_its_bound(n, base):
    tm = AcceleratorTiming(DECODER)
    latency = tm.schedule(n, base=base).latency
    b = tm.bounds(n, base)
    assert max(b.work.values()) <= b.bound == b.tight <= latency
    assert b.critical_path <= b.bound


def test_a_decode_step_grows_with_the_cache_and_splits_into_its_parts():
    tm = AcceleratorTiming(DECODER)
    steps = [tm.schedule(1, base=c).latency for c in range(DECODER.dcim.rows)]
    assert all(a < b for a, b in zip(steps, steps[1:]))  # each cached key: more softmax
    for c in (0, 9):
        split = tm.step_split(c)
        assert sum(split.values()) == steps[c] and min(split.values()) > 0, split
    # what grows is the softmax rows: one more key in every head's row
    grow = {k: tm.step_split(9)[k] - tm.step_split(0)[k] for k in tm.step_split(0)}
    assert grow["softmax"] == steps[9] - steps[0] and grow["tile reads"] == 0
    with pytest.raises(ValueError, match="a decode step is a decoder's"):
        AcceleratorTiming(TINY).step_split(0)


def test_the_decoder_map_has_the_final_layernorm():
    rm = register_map(DECODER, map_model(DECODER))
    names = {r.name for r in rm.regions}
    assert "lnf" in names and "ln0" not in names
    assert {"ln0"} <= {r.name for r in register_map(TINY, map_model(TINY)).regions}
