"""cimforge.golden.analog_tile: the tile unit's parameters, register map and cycle model."""

import dataclasses

import pytest

from cimforge.config import load_config
from cimforge.golden.analog_tile import (
    REGISTERS,
    AnalogTileSpec,
    AnalogTileTiming,
    register_address,
)

TINY = AnalogTileSpec.from_config(load_config("tiny"))


def test_tiny_figures():
    s = TINY
    assert (s.inputs, s.outputs, s.adcs_per_tile, s.channels_per_tile) == (32, 4, 8, 4)
    assert (s.digits, s.groups, s.reads_per_vector) == (8, 2, 16)
    assert (s.conversion_cycles, s.read_cycles) == (6, 24)  # SAR: one decision per bit
    flash = dataclasses.replace(s, adc_kind="flash")
    assert flash.read_cycles == 4  # one cycle per conversion, 4 columns per ADC


@pytest.mark.parametrize("kw, message", [
    ({"cols_per_adc": 3}, r"cols_per_adc must divide cols \(32\), not 3"),
    ({"adc_bits": 17}, r"adc_bits must be at most 16, not 17"),
    ({"adc_kind": "flash", "adc_bits": 9}, r"adc_bits must be at most 8 for a flash ADC, not 9"),
    ({"adc_kind": "pipeline"}, r"adc_kind must be one of sar, flash, not 'pipeline'"),
    ({"cols": 20, "cols_per_adc": 4}, r"cols must be a multiple of 8 \(2 polarities x 4 slices\)"),
    ({"rows_per_read": 5}, r"rows_per_read must divide rows \(32\), not 5"),
    ({"row_tiles": 0}, r"row_tiles must be a positive integer, not 0"),
    ({"cols": 4096, "col_tiles": 2, "cols_per_adc": 4},
     r"at most 1024 SAR ADCs \(one offset register each\), not 2048"),
    ({"act_bits": 16, "weight_bits": 16, "bits_per_cell": 1, "adc_bits": 16, "acc_bits": 48},
     r"a shift-add term of 62 bits is too wide to be summed exactly in 64 bits"),
])
def test_invalid_parameters_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **kw)


def test_register_addresses():
    assert register_address("gain", 0) == REGISTERS["gain"]
    assert register_address("range", 3) == REGISTERS["range"] + 3
    assert register_address("offset", 1023) == REGISTERS["offset"] + 1023
    with pytest.raises(ValueError, match=r"register must be one of gain, drift, range, offset"):
        register_address("bias", 0)
    with pytest.raises(ValueError, match=r"range index must lie in \[0, 255\], not 256"):
        register_address("range", 256)


def test_full_rate_has_no_bubbles():
    t = AnalogTileTiming(TINY)
    P, L, n = TINY.reads_per_vector, TINY.read_cycles, TINY.outputs
    s = t.schedule([None] * 6)
    # reads back to back across vectors: one every L cycles from the first to the last
    assert [b - a for a, b in zip(s.first_read, s.first_read[1:])] == [P * L] * 5
    assert s.offered[0] == s.first_read[0] + (P - 1) * L + t.result_latency
    # the collector: reads the last result's n channels, then offers it
    assert t.stream_cycles(6) == 1 + 6 * P * L + t.tail + n + t.RESULT_DEPTH
    c = t.collected([None] * 6)
    assert t.stream_cycles(6) == c.offered[-1] - c.accepted[0]
    assert c.offered[0] == s.offered[0] + n + t.RESULT_DEPTH
    assert s.accepted[:2] == [0, 1]  # two input buffers
    assert s.accepted[2] == s.first_read[0] + (P - 1) * L + 1  # after vector 0's last read


def test_results_in_flight_are_limited_to_two():
    t = AnalogTileTiming(TINY)
    late = 5000  # nothing is released before this cycle
    s = t.schedule([None] * 4, lambda v, c: max(c, late + v))
    assert s.taken[:2] == [late, late + 1]
    assert s.first_read[1] < late  # vector 1 runs while vector 0's result waits
    assert s.first_read[2] == late + 1  # vector 2 waits for vector 0's result's release
    assert s.offered[1] == late + 1  # the second result is valid after the first's release


def test_release_before_valid_is_refused():
    with pytest.raises(ValueError, match=r"result 0 released in cycle 3, before it was valid"):
        AnalogTileTiming(TINY).schedule([None], lambda v, c: 3)


def test_offers_must_follow_acceptance():
    with pytest.raises(ValueError, match=r"vector 1 offered in cycle 0, not after vector 0"):
        AnalogTileTiming(TINY).schedule([0, 0])
