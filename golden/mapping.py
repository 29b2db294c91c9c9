"""The mapper: where every weight matrix and every head's K and V live on the accelerator.

One placement, read by the golden accelerator model (which programs one
:class:`~cimforge.golden.cim.CimMatrix` per tile unit), by the RTL top (which instantiates
one analog tile unit per :class:`TileUnit` and one digital-CIM macro per :class:`MacroSlot`)
and by the cost estimates.

Weights (weight-stationary: every matrix of every layer has crossbars of its own)
    A layer has six matrices, :data:`MATRICES`: ``q``, ``k``, ``v`` and ``o`` (``d x d``),
    ``ff1`` (``d x d_ff``) and ``ff2`` (``d_ff x d``), stored as ``(in, out)``. A matrix of
    ``K`` inputs and ``N`` output channels needs ``ceil(K / tile.rows)`` row tiles (the rows a
    unit reads one row tile after another, partial sums continuing in its shift-add) and
    ``ceil(N / channels_per_tile)`` column tiles. One analog tile unit holds at most
    ``accelerator.max_unit_tiles`` row tiles and as many column tiles; a matrix with more
    column tiles is split over several units side by side, in near-equal runs of column tiles,
    each unit converting its channels of the same input vector in parallel. A matrix with more
    row tiles is refused (use taller tiles).

K and V (the digital-CIM macros)
    Every layer has, for every head, one macro holding its keys (``SCORES``: ``q . K^T``) and
    one holding its values (``WEIGHTED``: ``P . V``): a macro of ``dcim.rows`` tokens of
    ``dcim.cols`` elements, of which a head uses ``d_head``. ``dcim.rows`` is the KV capacity:
    the longest sequence the accelerator runs.

A unit's :attr:`TileUnit.index` is its place in :attr:`Mapping.units` and the ``key`` of its
random draws (programming noise, drift, ...), so that golden and the bench's analog model draw
the same devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cimforge.config import Config

__all__ = ["MATRICES", "MappingError", "TileUnit", "MacroSlot", "Mapping", "map_model"]

MATRICES = ("q", "k", "v", "o", "ff1", "ff2")


class MappingError(ValueError):
    """A model that does not fit the accelerator its config declares."""


@dataclass(frozen=True)
class TileUnit:
    """One analog tile unit: ``row_tiles x col_tiles`` crossbars holding input rows
    ``0 .. inputs - 1`` and output channels ``first .. first + channels - 1`` of one matrix."""

    index: int
    layer: int
    matrix: str
    inputs: int
    first: int
    channels: int
    row_tiles: int
    col_tiles: int

    @property
    def crossbars(self) -> int:
        return self.row_tiles * self.col_tiles

    @property
    def name(self) -> str:
        return f"l{self.layer}_{self.matrix}_{self.first}"


@dataclass(frozen=True)
class MacroSlot:
    """One digital-CIM macro: the keys (``operand = "k"``) or values (``"v"``) of one head of
    one layer."""

    index: int
    layer: int
    head: int
    operand: str


@dataclass(frozen=True)
class Mapping:
    """The placement of a config's model (:func:`map_model`)."""

    cfg: Config
    units: tuple[TileUnit, ...]
    macros: tuple[MacroSlot, ...]

    def units_of(self, layer: int, matrix: str) -> tuple[TileUnit, ...]:
        """The units of one matrix, in channel order."""
        return tuple(u for u in self.units if u.layer == layer and u.matrix == matrix)

    def macro(self, layer: int, head: int, operand: str) -> MacroSlot:
        return next(m for m in self.macros
                    if (m.layer, m.head, m.operand) == (layer, head, operand))

    @property
    def crossbars(self) -> int:
        return sum(u.crossbars for u in self.units)

    @property
    def cells(self) -> int:
        """Cells of every crossbar."""
        return self.crossbars * self.cfg.tile.rows * self.cfg.tile.cols

    @property
    def cells_used(self) -> int:
        """Cells holding a weight slice: ``2 S`` per weight (both polarities)."""
        return sum(u.inputs * u.channels for u in self.units) * self.cfg.cols_per_channel

    @property
    def kv_capacity(self) -> int:
        """Tokens the K and V macros hold: the longest sequence."""
        return self.cfg.dcim.rows

    def as_dict(self) -> dict:
        t = self.cfg.tile
        return {
            "config": self.cfg.name,
            "crossbar": {"rows": t.rows, "cols": t.cols,
                         "channels": self.cfg.channels_per_tile},
            "crossbars": self.crossbars,
            "cells": self.cells,
            "cells_used": self.cells_used,
            "units": [{"index": u.index, "layer": u.layer, "matrix": u.matrix,
                       "inputs": u.inputs, "channels": [u.first, u.first + u.channels],
                       "row_tiles": u.row_tiles, "col_tiles": u.col_tiles}
                      for u in self.units],
            "dcim": {"rows": self.cfg.dcim.rows, "cols": self.cfg.dcim.cols,
                     "macros": len(self.macros), "kv_capacity": self.kv_capacity},
        }

    def table(self) -> str:
        """The placement as a Markdown table, one row per layer and matrix."""
        cfg, t = self.cfg, self.cfg.tile
        m = cfg.model
        lines = [
            f"# {cfg.name}: {m.name} ({m.n_layers} layers, d = {m.d_model}, {m.n_heads} heads, "
            f"d_ff = {m.d_ff}) on {t.rows}x{t.cols} crossbars of {t.bits_per_cell}-bit cells "
            f"({cfg.channels_per_tile} channels each)",
            "",
            "| layer | matrix | shape | units | crossbars per unit (rows x cols) | crossbars |",
            "|---|---|---|---|---|---|",
        ]
        for layer in range(m.n_layers):
            for name in MATRICES:
                us = self.units_of(layer, name)
                k, n = _shape(cfg, name)
                per = ", ".join(f"{u.row_tiles}x{u.col_tiles}" for u in us)
                lines.append(f"| {layer} | {name} | {k} x {n} | {len(us)} | {per} | "
                             f"{sum(u.crossbars for u in us)} |")
        used = self.cells_used / self.cells
        lines += [
            "",
            f"{len(self.units)} tile units, {self.crossbars} crossbars"
            + (f" of {cfg.accelerator.crossbars} declared" if cfg.accelerator.crossbars else "")
            + f", {self.cells:,} cells ({used:.1%} hold a weight slice).",
            f"{len(self.macros)} digital-CIM macros of {cfg.dcim.rows} x {cfg.dcim.cols} "
            f"(K and V of {m.n_heads} heads x {m.n_layers} layers, d_head = {m.d_head})"
            + (f" of {cfg.accelerator.dcim_macros} declared" if cfg.accelerator.dcim_macros
               else "") + f"; KV capacity {self.kv_capacity} tokens.",
        ]
        return "\n".join(lines) + "\n"


def _shape(cfg: Config, matrix: str) -> tuple[int, int]:
    d, f = cfg.model.d_model, cfg.model.d_ff
    return {"ff1": (d, f), "ff2": (f, d)}.get(matrix, (d, d))


def _split(total: int, most: int) -> list[int]:
    """``total`` column tiles in the fewest runs of at most ``most``, as equal as they go."""
    n = math.ceil(total / most)
    return [total // n + (i < total % n) for i in range(n)]


def map_model(cfg: Config) -> Mapping:
    """Place ``cfg.model`` on the accelerator ``cfg`` declares.

    Raises
    ------
    MappingError
        If a matrix needs more row tiles than a unit chains, or the model needs more crossbars
        or digital-CIM macros than ``[accelerator]`` declares, or a head is wider than a
        macro; the message names what is needed and what the config allows.
    """
    m, t, acc = cfg.model, cfg.tile, cfg.accelerator
    cpt = cfg.channels_per_tile
    units: list[TileUnit] = []
    for layer in range(m.n_layers):
        for name in MATRICES:
            k, n = _shape(cfg, name)
            row_tiles = cfg.row_tiles(k)
            if row_tiles > acc.max_unit_tiles:
                raise MappingError(
                    f"{cfg.name}: matrix {name} ({k} x {n}) needs {row_tiles} row tiles of "
                    f"{t.rows} rows, and a tile unit chains at most accelerator.max_unit_tiles "
                    f"= {acc.max_unit_tiles}: use tile.rows >= {math.ceil(k / acc.max_unit_tiles)}"
                    f" or raise max_unit_tiles (<= 16)")
            first = 0
            for col_tiles in _split(math.ceil(n / cpt), acc.max_unit_tiles):
                channels = min(col_tiles * cpt, n - first)
                units.append(TileUnit(len(units), layer, name, k, first, channels, row_tiles,
                                      col_tiles))
                first += channels
    mapping = Mapping(cfg, tuple(units), tuple(
        MacroSlot(i, layer, head, operand) for i, (layer, head, operand) in enumerate(
            (layer, head, operand) for layer in range(m.n_layers) for head in range(m.n_heads)
            for operand in ("k", "v"))))
    if acc.crossbars and mapping.crossbars > acc.crossbars:
        raise MappingError(
            f"{cfg.name}: {m.name} needs {mapping.crossbars} crossbars of {t.rows}x{t.cols} "
            f"({len(units)} tile units over {m.n_layers} layers), and accelerator.crossbars "
            f"declares {acc.crossbars}: declare at least {mapping.crossbars}, or use larger "
            f"tiles or more bits per cell")
    if m.d_head > cfg.dcim.cols:
        raise MappingError(
            f"{cfg.name}: a head of {m.name} has d_head = {m.d_head} elements, and a "
            f"digital-CIM macro row holds dcim.cols = {cfg.dcim.cols}: use dcim.cols >= "
            f"{m.d_head}")
    if acc.dcim_macros and len(mapping.macros) > acc.dcim_macros:
        raise MappingError(
            f"{cfg.name}: K and V of {m.n_heads} heads x {m.n_layers} layers need "
            f"{len(mapping.macros)} digital-CIM macros, and accelerator.dcim_macros declares "
            f"{acc.dcim_macros}: declare at least {len(mapping.macros)}")
    if m.seq_len > cfg.dcim.rows:
        raise MappingError(
            f"{cfg.name}: model.seq_len = {m.seq_len} tokens exceed the KV capacity, "
            f"dcim.rows = {cfg.dcim.rows}: use dcim.rows >= {m.seq_len} or a shorter seq_len")
    return mapping
