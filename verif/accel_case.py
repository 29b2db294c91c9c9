"""What a bench of the accelerator needs from golden for one run (an encoder's sequence, a
decoder's prefill or decode step): the parameter and register writes (word address, value)
that set it up, the input beats, every tile unit's read sequence (word-line drives to expect,
analog values to load) and the expected output beats (:mod:`cimforge.golden.accelerator`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from cimforge.golden.accel_regmap import (
    ATTENTION_REGS,
    DRAINER_REGS,
    LN_ELEMENT_BASE,
    MULT_BASE,
    MULT_SHIFT_LSB,
    RegisterMap,
    bias_base,
)
from cimforge.golden.accelerator import AcceleratorDecoder, AcceleratorModel, TileLinear
from cimforge.golden.int_decoder import IntKVCache
from cimforge.golden.nonlinear import LayerNormParams, Multiplier
from cimforge.hw.transformer_layer import unit_spec
from cimforge.verif.tile_case import TileCase

__all__ = ["AccelCase", "accelerator_model", "pack_beats", "parameter_writes", "real_layers",
           "sentence_codes", "unit_level_maps", "unpack_beats"]

WORD = (1 << 32) - 1


def _words64(value: int) -> tuple[int, int]:
    v = int(value) & ((1 << 64) - 1)
    return v & WORD, v >> 32


def _scalar(m: Multiplier) -> tuple[int, int]:
    return int(np.asarray(m.mult).reshape(-1)[0]), int(m.shift)


def _layernorm_writes(region, p: LayerNormParams) -> list[tuple[int, int]]:
    writes = [(region.address(0), int(p.shift))]
    for i, (g, b) in enumerate(zip(np.asarray(p.gamma).tolist(), np.asarray(p.beta).tolist(),
                                   strict=True)):
        lo, hi = _words64(b)
        at = LN_ELEMENT_BASE + 4 * i
        writes += [(region.address(at), int(g) & WORD), (region.address(at + 1), lo),
                   (region.address(at + 2), hi)]
    return writes


def _drainer_writes(region, linears: list[TileLinear], res: Multiplier | None
                    ) -> list[tuple[int, int]]:
    writes = []
    if res is not None:
        mult, shift = _scalar(res)
        writes += [(region.address(DRAINER_REGS["res_mult"]), mult),
                   (region.address(DRAINER_REGS["res_shift"]), shift)]
    mults = np.concatenate([np.broadcast_to(np.asarray(lin.out.mult), lin.bias.shape)
                            for lin in linears])
    shifts = np.concatenate([np.full(lin.bias.shape, lin.out.shift) for lin in linears])
    biases = np.concatenate([lin.bias for lin in linears])
    n = len(biases)
    for c in range(n):
        writes.append((region.address(MULT_BASE + c),
                       int(mults[c]) | int(shifts[c]) << MULT_SHIFT_LSB))
        lo, hi = _words64(biases[c])
        writes += [(region.address(bias_base(n) + 2 * c), lo),
                   (region.address(bias_base(n) + 2 * c + 1), hi)]
    return writes


def parameter_writes(model: AcceleratorModel | AcceleratorDecoder, regmap: RegisterMap
                     ) -> list[tuple[int, int]]:
    """Every parameter write of ``model``: the embedding LayerNorm (an encoder's) or the final
    LayerNorm (a decoder's) and, per layer, the drainers' multipliers and biases, the
    attention multipliers, the LayerNorms and the GELU table."""
    if isinstance(model, AcceleratorDecoder):
        writes = _layernorm_writes(regmap.region("lnf"), model.lnf)
    else:
        writes = _layernorm_writes(regmap.region("ln0"), model.ln0)
    for i, b in enumerate(model.blocks):
        r = lambda name, i=i: regmap.region(f"l{i}.{name}")  # noqa: E731
        writes += _drainer_writes(r("qkv"), [b.q, b.k, b.v], None)
        for name, m in (("score", b.scores), ("ctx", b.ctx)):
            mult, shift = _scalar(m)
            writes += [(r("attn").address(ATTENTION_REGS[f"{name}_mult"]), mult),
                       (r("attn").address(ATTENTION_REGS[f"{name}_shift"]), shift)]
        writes += _drainer_writes(r("o"), [b.o], b.res1)
        writes += _layernorm_writes(r("ln1"), b.ln1)
        writes += _drainer_writes(r("ff1"), [b.ff1], None)
        writes += [(r("act").address(k), int(v) & WORD)
                   for k, v in enumerate(np.asarray(b.act).tolist())]
        writes += _drainer_writes(r("ff2"), [b.ff2], b.res2)
        writes += _layernorm_writes(r("ln2"), b.ln2)
    return writes


def pack_beats(codes: np.ndarray, bits: int, per_beat: int) -> list[tuple[int, int]]:
    """Rows of codes as stream beats (data, last): ``per_beat`` codes a beat, element 0 in the
    low bits, a row's last beat padded with zeros, ``last`` on the final beat."""
    beats = []
    mask = (1 << bits) - 1
    for row in np.asarray(codes).tolist():
        for start in range(0, len(row), per_beat):
            word = 0
            for j, v in enumerate(row[start:start + per_beat]):
                word |= (int(v) & mask) << (j * bits)
            beats.append((word, 0))
    if beats:
        beats[-1] = (beats[-1][0], 1)
    return beats


def unpack_beats(beats: list[int], d: int, bits: int, per_beat: int) -> np.ndarray:
    """The rows of codes output beats carry (the inverse of :func:`pack_beats`)."""
    rows, row = [], []
    mask, top = (1 << bits) - 1, 1 << (bits - 1)
    for word in beats:
        for j in range(min(per_beat, d - len(row))):
            v = (word >> (j * bits)) & mask
            row.append(v - (top << 1) if v & top else v)
        if len(row) == d:
            rows.append(row)
            row = []
    return np.array(rows, dtype=np.int64)


@dataclass
class AccelCase:
    """Golden side of one run on the accelerator.

    ``model`` is the golden accelerator (an encoder's or a decoder's); ``h`` the embedding
    codes (n, d) the host streams; ``levels`` what the bench saw programmed into each unit's
    crossbars (the reads come from crossbars holding these; the expected results from golden's
    own). A decoder's run continues the sequence in ``cache`` (its tokens at positions
    ``cache.length ..``; the case advances the cache).

    Attributes
    ----------
    writes : list of (word address, value)
        Parameter and tile register writes.
    beats : list of (data, last)
    units : dict of unit index -> TileCase
        Each tile unit's reads (``drives``, ``values``) and registers.
    expected : int64 (n, d)
        The last LayerNorm's codes.
    """

    cfg: Config
    model: AcceleratorModel
    regmap: RegisterMap
    h: np.ndarray
    per_beat: int
    levels: dict[int, np.ndarray] | None = None  # what each unit's crossbars were programmed to
    cache: IntKVCache | None = None  # a decoder's K and V cache before the run
    matrices: dict | None = None  # crossbars built for earlier cases (TileCase.matrices)

    def __post_init__(self):
        model, cfg = self.model, self.cfg
        lins = [getattr(b, name) for b in model.blocks
                for name in ("q", "k", "v", "o", "ff1", "ff2")]
        for lin in lins:
            lin.inputs.clear()
        if isinstance(model, AcceleratorDecoder):
            if self.cache is None:
                self.cache = model.new_cache()
            self.base = self.cache.length
            self.expected = model.forward_codes(self.h, self.cache)
        else:
            self.base = 0
            self.expected = model.run(self.h)
        self.writes = parameter_writes(model, self.regmap)
        self.units: dict[int, TileCase] = {}
        for lin in lins:
            x = lin.inputs[-1]
            for u in lin.units:
                tc = TileCase(cfg.with_sections(tile={"row_tiles": u.row_tiles,
                                                      "col_tiles": u.col_tiles}),
                              lin.w[:, u.first:u.first + u.channels], x, key=u.index,
                              levels=None if self.levels is None else self.levels[u.index],
                              first=self.base, matrices=self.matrices)
                assert tc.spec == unit_spec(cfg, u)
                self.units[u.index] = tc
                region = self.regmap.region(f"tile{u.index}")
                self.writes += [(region.address(a), v) for a, v in tc.registers]
        self.beats = pack_beats(self.h, model.spec.residual_bits, self.per_beat)


def unit_level_maps(model: AcceleratorModel) -> dict[int, np.ndarray]:
    """Every tile unit's cell levels as golden maps its weights (what the weight image
    programs): unit index -> :attr:`cimforge.golden.cim.CimMatrix.level_map`."""
    return {u.index: m.level_map for b in model.blocks
            for lin in (b.q, b.k, b.v, b.o, b.ff1, b.ff2)
            for u, m in zip(lin.units, lin.matrices, strict=True)}


def accelerator_model(cfg: Config, effects: bool = False
                      ) -> AcceleratorModel | AcceleratorDecoder:
    """The golden accelerator of ``cfg`` for the benches. ``minilm``: the real
    all-MiniLM-L6-v2, its first ``model.n_layers`` layers (its real weights), ranges
    calibrated on the reference sentences; another encoder gets seeded random weights
    (:meth:`~cimforge.golden.float_model.EncoderWeights.random`, seed ``cfg.seed``) and ranges
    calibrated on 8 seeded random sequences; a decoder, the seeded decoder of
    :func:`cimforge.golden.int_decoder.calibrated`. ``effects`` switches every analog effect
    of the tile benches on (the hardware is the same), with the approximate IR drop for
    crossbars larger than 256 x 256."""
    from cimforge.golden.int_model import calibrate
    from cimforge.verif.tile_case import effects_for

    noisy = cfg.with_sections(analog=effects_for(cfg)) if effects else cfg
    if cfg.model.kind == "decoder":
        from cimforge.golden.int_decoder import calibrated

        decoder, ranges = calibrated(cfg)
        return AcceleratorDecoder(decoder, noisy, ranges)
    if cfg.model.name == "minilm":
        from cimforge.data import reference_sentences

        enc = real_layers(cfg)
        ranges = calibrate(enc, reference_sentences())
    else:
        from cimforge.golden.float_model import Encoder, EncoderWeights

        enc = Encoder(model=cfg.model, weights=EncoderWeights.random(cfg.model, cfg.seed))
        rng = np.random.default_rng(cfg.seed)
        seqs = [rng.integers(0, cfg.model.vocab_size,
                             size=int(rng.integers(2, cfg.model.seq_len + 1))).tolist()
                for _ in range(8)]
        ranges = calibrate(enc, seqs)
    return AcceleratorModel(enc, noisy, ranges)


def real_layers(cfg: Config):
    """all-MiniLM-L6-v2 cut to its first ``cfg.model.n_layers`` layers (embeddings,
    tokenizer and those layers' real weights)."""
    import dataclasses

    from cimforge.golden.float_model import Encoder, load_minilm

    full = load_minilm()
    n = cfg.model.n_layers
    if n > len(full.weights.layers):
        raise ValueError(f"model.n_layers = {n}: all-MiniLM-L6-v2 has "
                         f"{len(full.weights.layers)} layers")
    weights = dataclasses.replace(full.weights, layers=tuple(full.weights.layers[:n]))
    return Encoder(model=dataclasses.replace(full.model, n_layers=n), weights=weights,
                   tokenizer=full._tokenizer, layer_norm_eps=full._eps,
                   max_tokens=full.max_tokens, pad_id=full._pad_id)


def sentence_codes(model: AcceleratorModel, min_tokens: int) -> tuple[str, np.ndarray]:
    """The shortest reference sentence of at least ``min_tokens`` tokens (with [CLS] and
    [SEP]) that fits the KV capacity, and its embedding codes."""
    from cimforge.data import reference_sentences

    best = None
    for text in reference_sentences():
        ids, mask = model.tokenize([text])
        n = int(mask.sum())
        if min_tokens <= n <= model.kv_capacity and (best is None or n < best[2]):
            best = (text, ids[:, :n], n)
    if best is None:
        raise ValueError(f"no reference sentence has {min_tokens} to {model.kv_capacity} "
                         "tokens")
    text, ids, n = best
    return text, model.embedding_codes(ids, np.ones_like(ids, dtype=bool))


def random_tokens(model: AcceleratorModel | AcceleratorDecoder, n: int,
                  rng: np.random.Generator, start: int = 0) -> np.ndarray:
    """The embedding codes of ``n`` random tokens (a decoder's at positions ``start ..``)."""
    ids = rng.integers(0, model.model.vocab_size, size=(1, n))
    if isinstance(model, AcceleratorDecoder):
        return model.embedding_codes(ids[0], start)
    return model.embedding_codes(ids, np.ones_like(ids, dtype=bool))
