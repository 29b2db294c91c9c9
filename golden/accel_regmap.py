"""The accelerator's register map: one description, read by the RTL top's decoder, the bench's
writes and (generated from it) the documentation.

The map is in 32-bit words (AXI4-Lite byte address = 4 x word address). It is a list of
*regions*, each a power-of-two number of words at a base aligned to its size, allocated from
the config and its mapping:

``control``
    Identification, control, status and error registers (:data:`CONTROL`).
``ln0`` (an encoder) or ``lnf`` (a decoder)
    The embedding LayerNorm's or the final LayerNorm's parameters (layout of a ``layernorm``
    region).
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

__all__ = ["Region", "RegisterMap", "register_map", "to_markdown", "to_c_header", "to_python",
           "doc_block",
           "CONTROL", "ERROR_BITS", "ID",
           "LN_ELEMENT_BASE", "DRAINER_REGS",
           "MULT_BASE", "MULT_SHIFT_LSB", "bias_base", "ATTENTION_REGS"]

# The control region's registers: name -> (word, access, meaning).
CONTROL = {
    "id": (0, "ro", "0x43494D46 ('CIMF')"),
    "config": (1, "ro", "the low 32 bits of the config's SHA-256 digest"),
    "status": (2, "ro", "bit 0: busy (a run is in progress); bit 1: an error is set; "
                        "bit 2: programming (an image is being taken or a crossbar is still "
                        "writing); bit 3: kv_full (a decoder's K and V cache holds its "
                        "capacity: the next run's tokens are dropped)"),
    "error": (3, "w1c", "sticky error bits (ERROR_BITS); write 1 to clear"),
    "tokens": (4, "ro", "tokens of the run in progress received so far (0 between runs)"),
    "cycles": (5, "ro", "cycles from the run's first input beat to its last output beat"),
    "program": (6, "wo", "write 1: the input stream's next packet is the weight image "
                         "(refused while busy or programming); reads 0"),
    "prog_cycles": (7, "ro", "cycles from the weight image's first beat to the end of the "
                             "last crossbar write"),
    "kv_tokens": (8, "ro", "tokens in a decoder's K and V cache: the position of the next "
                           "run's first token (always 0 for an encoder)"),
    "kv_clear": (9, "wo", "write 1: empty the K and V cache, the next run starts a new "
                          "sequence (refused while busy); reads 0"),
}
ID = 0x43494D46
# The ERROR register's bits: name -> (bit, meaning).
ERROR_BITS = {
    "kv_overflow": 0,  # tokens beyond the KV capacity arrived (and were dropped)
    "tlast": 1,  # tlast on a beat that does not end a token (the partial token was dropped)
    "busy_write": 2,  # a parameter, tile, PROGRAM or KV_CLEAR write while busy (dropped, SLVERR)
    "bad_address": 3,  # a write where nothing writable is: unmapped, or read-only (SLVERR)
}
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
    top_ln = "lnf" if m.kind == "decoder" else "ln0"
    wanted = [("control", "control", 16), (top_ln, "layernorm", ln_words)]
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


# What a region of each kind holds, word by word (the documents' words).
KIND_LAYOUT = {
    "control": "the registers of the control table",
    "layernorm": f"word 0: output shift; element i: gamma at {LN_ELEMENT_BASE} + 4i, beta low "
                 f"32 bits at +1, beta high bits at +2 (this write commits the element)",
    "drainer": f"word {DRAINER_REGS['res_mult']}: residual multiplier, word "
               f"{DRAINER_REGS['res_shift']}: residual shift (o and ff2); channel c: multiplier "
               f"(bits 0-23) and shift (bits {MULT_SHIFT_LSB}-{MULT_SHIFT_LSB + 5}) at "
               f"{MULT_BASE} + c; bias (64-bit two's complement) at bias_base + 2c (low), "
               f"+1 (high)",
    "attention": ", ".join(f"word {w}: {n}" for n, w in ATTENTION_REGS.items()),
    "activation": "entry k of the GELU table (the input code's bits read as unsigned) at word k",
    "tile": "the tile unit's registers (docs/hw-analog-tile.md): register address a at word a",
}


def _bias_base_of(region: Region, cfg: Config) -> int | None:
    if region.kind != "drainer":
        return None
    m = cfg.model
    channels = {"qkv": 3 * m.d_model, "o": m.d_model, "ff1": m.d_ff, "ff2": m.d_model}
    return bias_base(channels[region.name.split(".")[1]])


def to_markdown(regmap: RegisterMap, cfg: Config) -> str:
    """The register map as a Markdown page."""
    lines = [f"# Register map: {cfg.name}", "",
             "AXI4-Lite, 32-bit words; byte address = 4 x word address.", "",
             "## Control region", "",
             "| byte address | register | access | meaning |", "|---|---|---|---|"]
    base = regmap.region("control").base
    for name, (word, access, meaning) in CONTROL.items():
        lines.append(f"| 0x{4 * (base + word):06X} | {name.upper()} | {access} | {meaning} |")
    lines += ["", "A write to a read-only (ro) register, or to a control word with no register, "
              "answers SLVERR and sets ERROR `bad_address`; reads of a write-only (wo) register "
              "return 0.", "",
              "ERROR bits: " + ", ".join(f"{b} `{n}`" for n, b in ERROR_BITS.items()) + ".",
              "", "## Regions", "",
              "| region | kind | byte base | bytes | bias_base |", "|---|---|---|---|---|"]
    for r in regmap.regions:
        bb = _bias_base_of(r, cfg)
        lines.append(f"| {r.name} | {r.kind} | 0x{4 * r.base:06X} | {4 * r.words} | "
                     f"{'' if bb is None else bb} |")
    lines += ["", "## Region layouts (word offsets within the region)", ""]
    lines += [f"* `{kind}`: {text}." for kind, text in KIND_LAYOUT.items()]
    return "\n".join(lines) + "\n"


def _c_name(name: str) -> str:
    return name.upper().replace(".", "_")


def to_c_header(regmap: RegisterMap, cfg: Config) -> str:
    """The register map as a C header of byte addresses and field constants."""
    guard = f"CIMFORGE_{_c_name(cfg.name).replace('-', '_')}_REGS_H"
    out = [f"/* Register map of the cimforge accelerator, config {cfg.name}: generated by "
           "cimforge generate. Byte addresses. */", f"#ifndef {guard}", f"#define {guard}", "",
           f"#define CIMFORGE_ID_VALUE 0x{ID:08X}u"]
    base = regmap.region("control").base
    for name, (word, _, _) in CONTROL.items():
        out.append(f"#define CIMFORGE_REG_{name.upper()} 0x{4 * (base + word):06X}u")
    for name, bit in ERROR_BITS.items():
        out.append(f"#define CIMFORGE_ERROR_{name.upper()} (1u << {bit})")
    for r in regmap.regions:
        c = _c_name(r.name).replace("-", "_")
        out.append(f"#define CIMFORGE_{c}_BASE 0x{4 * r.base:06X}u")
        bb = _bias_base_of(r, cfg)
        if bb is not None:
            out.append(f"#define CIMFORGE_{c}_BIAS_WORD {bb}u")
    out += [f"#define CIMFORGE_LN_ELEMENT_WORD {LN_ELEMENT_BASE}u",
            f"#define CIMFORGE_MULT_WORD {MULT_BASE}u",
            f"#define CIMFORGE_MULT_SHIFT_LSB {MULT_SHIFT_LSB}u"]
    out += [f"#define CIMFORGE_{n.upper()}_WORD {w}u" for n, w in
            {**DRAINER_REGS, **ATTENTION_REGS}.items()]
    out += ["", f"#endif /* {guard} */", ""]
    return "\n".join(out)


def to_python(regmap: RegisterMap, cfg: Config) -> str:
    """The register map as a Python module of constants (byte addresses)."""
    control = regmap.region("control").base
    registers = {n: 4 * (control + w) for n, (w, _, _) in CONTROL.items()}
    regions = {r.name: {"kind": r.kind, "base": 4 * r.base, "bytes": 4 * r.words,
                        **({"bias_word": _bias_base_of(r, cfg)} if r.kind == "drainer" else {})}
               for r in regmap.regions}
    lines = [f'"""Register map of the cimforge accelerator, config {cfg.name}: generated by '
             'cimforge generate. Byte addresses."""', "",
             f"ID = 0x{ID:08X}",
             f"CONTROL = {registers!r}",
             f"ERROR_BITS = {dict(ERROR_BITS)!r}",
             f"REGIONS = {regions!r}",
             f"LN_ELEMENT_WORD = {LN_ELEMENT_BASE}",
             f"MULT_WORD = {MULT_BASE}",
             f"MULT_SHIFT_LSB = {MULT_SHIFT_LSB}",
             f"DRAINER_WORDS = {dict(DRAINER_REGS)!r}",
             f"ATTENTION_WORDS = {dict(ATTENTION_REGS)!r}", ""]
    return "\n".join(lines)


def doc_block(regmap: RegisterMap, cfg: Config) -> str:
    """:func:`to_markdown` as a section of docs/hw-accelerator.md (its headings two levels
    down, no title)."""
    lines = to_markdown(regmap, cfg).split("\n")[2:]
    return "\n".join("##" + line if line.startswith("#") else line for line in lines)
