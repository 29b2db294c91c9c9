"""The accelerator's register map: one description, read by the RTL top's decoder, the bench's
writes and (generated from it) the documentation.

The map is in 32-bit words (AXI4-Lite byte address = 4 x word address). It is a list of
*regions*, each a power-of-two number of words at a base aligned to its size, allocated from
the config and its mapping:

``control``
    Identification, control, status and error registers (:data:`CONTROL`).
``ln0``
    The embedding LayerNorm's parameters (layout of a ``layernorm`` region).
per layer ``l``: ``l<l>.qkv``, ``l<l>.o``, ``l<l>.ff1``, ``l<l>.ff2`` (drainers)
    Scalar registers (:data:`DRAINER_REGS`), then per channel a multiplier word (multiplier
    in bits 0-23, shift in bits :data:`MULT_SHIFT_LSB` .. +5) from word :data:`MULT_BASE`,
    then per channel a bias in two words (low, high; sign-extended to 64 bits) from
    :func:`bias_base`. The ``qkv`` drainer holds q's channels, then k's, then v's.
per layer: ``l<l>.attn``
    :data:`ATTENTION_REGS`.
per layer: ``l<l>.ln1``, ``l<l>.ln2`` (``layernorm``)
    Word 0: the output shift; element ``i`` at words ``4 + 4 i`` (gamma), ``+1`` (beta, low
    32 bits), ``+2`` (beta, high bits: this write commits the element's gamma and beta).
per layer: ``l<l>.act``
    The GELU table: entry ``k`` (the input code's bits read as unsigned) at word ``k``.
per tile unit ``u``: ``tile<u>``
    The unit's registers (:data:`cimforge.golden.analog_tile.REGISTER_MAP`): register
    address ``a`` at word ``a`` (16 bits used).
"""

from __future__ import annotations

from dataclasses import dataclass

from cimforge.config import Config
from cimforge.golden.analog_tile import CSR_ADDR_BITS
from cimforge.golden.mapping import Mapping

__all__ = ["Region", "RegisterMap", "register_map", "CONTROL", "LN_ELEMENT_BASE", "DRAINER_REGS",
           "MULT_BASE", "MULT_SHIFT_LSB", "bias_base", "ATTENTION_REGS"]

# The control region's registers: name -> (word, access, meaning).
CONTROL = {
    "id": (0, "ro", "0x43494D46 ('CIMF')"),
    "config": (1, "ro", "the low 32 bits of the config's SHA-256 digest"),
    "ctrl": (2, "rw", "bit 0: soft reset (self-clearing)"),
    "status": (3, "ro", "bit 0 busy, 1 receiving, 2 computing, 3 sending, 4 error"),
    "error": (4, "w1c", "sticky errors: bit 0 KV overflow, 1 misplaced tlast, "
                        "2 write while busy, 3 bad address"),
    "tokens": (5, "ro", "tokens of the current (or last) sequence"),
    "cycles": (6, "ro", "cycles from the sequence's first input beat to its last output beat"),
}
ID = 0x43494D46
LN_ELEMENT_BASE = 4  # a layernorm region: element i at LN_ELEMENT_BASE + 4 i
DRAINER_REGS = {"res_mult": 0, "res_shift": 1}  # a drainer's residual multiplier and shift
MULT_BASE = 4  # a drainer's first multiplier word
MULT_SHIFT_LSB = 24  # where a multiplier word holds the shift
ATTENTION_REGS = {"score_mult": 0, "score_shift": 1, "ctx_mult": 2, "ctx_shift": 3}


def bias_base(channels: int) -> int:
    """Word offset of a drainer's biases: after the multipliers, 4-word aligned."""
    return MULT_BASE + -(-channels // 4) * 4


@dataclass(frozen=True)
class Region:
    """``words`` (a power of two) at word ``base`` (a multiple of ``words``)."""

    name: str
    kind: str
    base: int
    words: int

    @property
    def end(self) -> int:
        return self.base + self.words

    def address(self, word: int) -> int:
        """The absolute word address of word ``word`` of the region."""
        if not 0 <= word < self.words:
            raise ValueError(f"{self.name}: word {word} outside the region's {self.words}")
        return self.base + word


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class RegisterMap:
    regions: tuple[Region, ...]

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(f"no region {name!r}")

    @property
    def words(self) -> int:
        return max(r.end for r in self.regions)

    @property
    def addr_bits(self) -> int:
        """Width of a word address."""
        return max(1, (self.words - 1).bit_length())


def _drainer_words(channels: int) -> int:
    return bias_base(channels) + 2 * channels


def register_map(cfg: Config, mapping: Mapping) -> RegisterMap:
    """The map of ``cfg`` with its ``mapping``: regions largest first, each aligned to its
    size, so they pack without gaps."""
    m = cfg.model
    d, f = m.d_model, m.d_ff
    ln_words = LN_ELEMENT_BASE + 4 * d
    wanted = [("control", "control", 16), ("ln0", "layernorm", ln_words)]
    for layer in range(m.n_layers):
        p = f"l{layer}."
        wanted += [(p + "qkv", "drainer", _drainer_words(3 * d)),
                   (p + "attn", "attention", 4),
                   (p + "o", "drainer", _drainer_words(d)),
                   (p + "ln1", "layernorm", ln_words),
                   (p + "ff1", "drainer", _drainer_words(f)),
                   (p + "act", "activation", 1 << cfg.nonlinear.gelu_in_bits),
                   (p + "ff2", "drainer", _drainer_words(d)),
                   (p + "ln2", "layernorm", ln_words)]
    for u in mapping.units:
        wanted.append((f"tile{u.index}", "tile", 1 << CSR_ADDR_BITS))
    order = sorted(range(len(wanted)), key=lambda i: -_pow2(wanted[i][2]))
    base, placed = 0, {}
    for i in order:
        name, kind, words = wanted[i]
        size = _pow2(words)
        placed[i] = Region(name, kind, base, size)
        base += size
    return RegisterMap(tuple(placed[i] for i in range(len(wanted))))
