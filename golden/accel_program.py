"""Weight programming: the weight image the host streams into the accelerator, the crossbar
rows it becomes, and the cycle each row is written (docs/hw-accelerator.md, "Programming the
weights").

The image is one AXI4-Stream packet on the token input (after a write of 1 to the control
register ``PROGRAM``). It carries every crossbar row of every tile unit, in the order
:meth:`ProgramFormat.order` gives -- row ``r`` of every crossbar of every unit, then row
``r + 1`` -- so that consecutive writes go to different crossbars and their program-and-verify
iterations overlap. A crossbar row is ``tile.cols`` cells of ``bits_per_cell`` bits (cell
``j`` at bits ``j * bits_per_cell``), cut into :attr:`ProgramFormat.beats_per_row` beats of
``stream_bits`` (the low bits first, the last beat padded with zeros); ``tlast`` is on the
image's final beat.

A crossbar row is written in one program-and-verify operation of the macro
(:func:`cycles_per_row`): ``write_verify_iterations`` iterations of a write pulse
(``write_latency_s`` at ``clock_mhz``) and a verify read (every column converted once). The
crossbar is busy for that long; rows of other crossbars are written meanwhile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.golden.mapping import Mapping, TileUnit

__all__ = ["ProgramFormat", "ProgramSchedule", "cycles_per_row", "crossbar_row",
           "weight_image", "LevelCapture"]


def cycles_per_row(cfg: Config) -> int:
    """Cycles one crossbar row's program-and-verify takes: ``write_verify_iterations`` x
    (the write pulse, ``ceil(write_latency_s x clock)``, plus a verify read of every column,
    ``cols_per_adc x conversion_cycles``)."""
    pulse = math.ceil(cfg.device.write_latency_s * cfg.accelerator.clock_mhz * 1e6 - 1e-9)
    verify = AnalogTileSpec.from_config(cfg).read_cycles
    return cfg.device.write_verify_iterations * (max(1, pulse) + verify)


def crossbar_row(level_map: np.ndarray, unit: TileUnit, xbar: int, row: int, rows: int,
                 cols: int) -> np.ndarray:
    """Row ``row`` of crossbar ``xbar`` (row tile ``xbar // col_tiles``, column tile
    ``xbar % col_tiles``) of a unit's level map."""
    rt, ct = divmod(xbar, unit.col_tiles)
    return level_map[rt * rows + row, ct * cols:(ct + 1) * cols]


@dataclass(frozen=True)
class ProgramFormat:
    """The image's geometry for a config and its mapping."""

    mapping: Mapping

    @property
    def cfg(self) -> Config:
        return self.mapping.cfg

    @property
    def row_bits(self) -> int:
        return self.cfg.tile.cols * self.cfg.tile.bits_per_cell

    @property
    def beats_per_row(self) -> int:
        return -(-self.row_bits // self.cfg.accelerator.stream_bits)

    @property
    def order(self) -> list[tuple[int, int, int]]:
        """Every crossbar row the image carries, in order: (unit index, crossbar, row)."""
        return [(u.index, x, r) for r in range(self.cfg.tile.rows)
                for u in self.mapping.units for x in range(u.crossbars)]

    @property
    def beats(self) -> int:
        return len(self.order) * self.beats_per_row

    @property
    def cycles_per_row(self) -> int:
        return cycles_per_row(self.cfg)

    def row_word(self, levels: np.ndarray) -> int:
        """A crossbar row's cells as one integer (cell j at bits j * bits_per_cell)."""
        bpc = self.cfg.tile.bits_per_cell
        word = 0
        for j, v in enumerate(np.asarray(levels).tolist()):
            word |= int(v) << (j * bpc)
        return word

    def row_levels(self, word: int) -> np.ndarray:
        """The inverse of :meth:`row_word`."""
        bpc = self.cfg.tile.bits_per_cell
        mask = (1 << bpc) - 1
        return np.array([(word >> (j * bpc)) & mask for j in range(self.cfg.tile.cols)],
                        dtype=np.uint8)


def weight_image(fmt: ProgramFormat, level_maps: dict[int, np.ndarray]
                 ) -> list[tuple[int, int]]:
    """The stream beats (data, last) that program every unit's ``level_maps[index]`` (each
    :attr:`cimforge.golden.cim.CimMatrix.level_map`)."""
    t, sb = fmt.cfg.tile, fmt.cfg.accelerator.stream_bits
    units = {u.index: u for u in fmt.mapping.units}
    mask = (1 << sb) - 1
    beats = []
    for index, x, r in fmt.order:
        word = fmt.row_word(crossbar_row(level_maps[index], units[index], x, r, t.rows, t.cols))
        beats += [((word >> (b * sb)) & mask, 0) for b in range(fmt.beats_per_row)]
    beats[-1] = (beats[-1][0], 1)
    return beats


class LevelCapture:
    """What a unit's crossbars were programmed to, assembled row by row from the writes seen
    on its programming port; cells never written read as level 0 (erased)."""

    def __init__(self, fmt: ProgramFormat, unit: TileUnit):
        t = fmt.cfg.tile
        self.fmt, self.unit = fmt, unit
        self.level_map = np.zeros((unit.row_tiles * t.rows, unit.col_tiles * t.cols),
                                  dtype=np.uint8)
        self.writes = 0

    def write(self, xbar: int, row: int, levels: np.ndarray) -> None:
        t = self.fmt.cfg.tile
        rt, ct = divmod(xbar, self.unit.col_tiles)
        self.level_map[rt * t.rows + row, ct * t.cols:(ct + 1) * t.cols] = levels
        self.writes += 1


@dataclass(frozen=True)
class ProgramSchedule:
    """When the programmer takes each image beat and writes each crossbar row.

    ``accepted[i]``: the cycle beat ``i`` is taken; ``writes[j]``: the cycle row ``j`` of
    :attr:`ProgramFormat.order` is strobed into its crossbar; ``done``: the last cycle a
    crossbar is busy (``PROG_CYCLES`` counts ``accepted[0] .. done``).
    """

    accepted: list[int]
    writes: list[int]
    done: int

    @property
    def cycles(self) -> int:
        return self.done - self.accepted[0] + 1

    @staticmethod
    def full_rate_cycles(fmt: ProgramFormat) -> int:
        """:attr:`cycles` of :meth:`of` with the beats back to back, in closed form (a BERT
        image is millions of rows): each round writes row ``r`` of every crossbar, a row's
        beats and its write cycle after the previous row's, and a round starts no sooner than
        ``cycles_per_row + 1`` cycles after the previous one (the first crossbar's previous
        write must be over)."""
        xbars = fmt.mapping.crossbars
        per_round = xbars * (fmt.beats_per_row + 1)
        period = max(per_round, fmt.cycles_per_row + 1)
        return (fmt.cfg.tile.rows - 1) * period + per_round + fmt.cycles_per_row

    @classmethod
    def of(cls, fmt: ProgramFormat, offered: list[int] | None = None) -> ProgramSchedule:
        """The schedule for beats offered at cycles ``offered`` (default: back to back from
        cycle 0), the programmer already waiting for the image.

        The RTL's rules: a beat is taken in any cycle the row buffer is not full; a full
        buffer is written in the cycle after its last beat, or as soon as the target
        crossbar's previous write (``cycles_per_row`` busy cycles after its strobe) is over;
        the buffer takes the next row's beats from the cycle after the write.
        """
        bpr, busy = fmt.beats_per_row, fmt.cycles_per_row
        order = fmt.order
        if offered is None:
            offered = list(range(len(order) * bpr))
        if len(offered) != len(order) * bpr:
            raise ValueError(f"{len(offered)} beats offered; the image has {len(order) * bpr}")
        accepted, writes = [], []
        last: dict[tuple[int, int], int] = {}
        t = 0  # the first cycle the buffer takes a beat
        i = 0
        for index, x, _ in order:
            for _ in range(bpr):
                t = max(offered[i], t)
                accepted.append(t)
                t += 1
                i += 1
            at = max(t, last.get((index, x), -busy - 1) + busy + 1)
            writes.append(at)
            last[(index, x)] = at
            t = at + 1
        return cls(accepted, writes, max(last.values()) + busy)
