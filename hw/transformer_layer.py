"""One layer of the accelerator -- an encoder's (post-LN) or a decoder's (pre-LN, causal) --
with its tile units, digital-CIM macros, non-linear units, scratchpad buffers and engines
(docs/hw-accelerator.md).

Engines, each taking tokens in order and coupled to the others only through the buffers'
row counts. An encoder layer:

* **QKV**: feeder (layer input ``x`` -> per-token scaling -> q, k, v units); drainer (q, k, v
  channels through one requantiser, narrow) -> q to the Q buffer, k and v by head into the
  macros (WRITE at row ``t``);
* **attention** (:class:`cimforge.hw.attention_engine.AttentionEngine`), once every token's K
  and V are written -> the context buffer;
* **O**: feeder (context -> scaling -> o unit); drainer (+ ``x`` requantised by the first
  residual multiplier) -> LayerNorm 1 -> the ``x1`` buffer;
* **FFN1**: feeder (``x1`` -> scaling -> ff1 units); drainer (narrow) -> GELU -> the ``a``
  buffer;
* **FFN2**: feeder (``a`` -> scaling -> ff2 unit); drainer (+ ``x1`` requantised by the second
  residual multiplier) -> LayerNorm 2 -> the layer output (the next layer's input buffer).

A decoder layer moves the LayerNorms before the matrices that read them: **LN1** (``x`` ->
LayerNorm 1 -> ``xn``, a row at a time) feeds QKV; the O drainer's sums (+ ``x``) are the
``x1`` buffer itself; **LN2** (``x1`` -> LayerNorm 2 -> ``x1n``) feeds FFN1; the FFN2
drainer's sums (+ ``x1``) are the layer output. K and V of run token ``t`` go to macro row
``base + t`` (``base``: the tokens the cache held before this run), and query ``t`` attends
to the first ``base + t + 1`` rows.

The layer's input buffer and output buffer belong to the top.
"""

from __future__ import annotations

import dataclasses

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.config import Config
from cimforge.golden.accel_regmap import LN_ELEMENT_BASE, RegisterMap
from cimforge.golden.accel_timing import KV_READY_DELAY, QKV_RELEASE_DELAY
from cimforge.golden.activation import ActivationSpec
from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.golden.dcim import SCORES, WEIGHTED, WRITE, DcimSpec
from cimforge.golden.layernorm import LayerNormSpec
from cimforge.golden.mapping import Mapping, TileUnit
from cimforge.golden.requant import RequantSpec
from cimforge.golden.softmax import SoftmaxSpec
from cimforge.golden.token_quant import TokenQuantSpec
from cimforge.hw.activation import Activation
from cimforge.hw.analog_tile import AnalogTile
from cimforge.hw.attention_engine import AttentionEngine
from cimforge.hw.crossbar_shell import shell_signature
from cimforge.hw.dcim import DigitalCim
from cimforge.hw.layernorm import LayerNorm
from cimforge.hw.scratchpad import TokenBuffer, row_read_signature
from cimforge.hw.tile_drainer import TileDrainer, param_signature
from cimforge.hw.tile_feeder import TileFeeder

__all__ = ["TransformerLayer", "unit_spec", "LayerSpecs", "row_layernorm",
           "connect_layernorm_params", "region_port"]


def unit_spec(cfg: Config, unit: TileUnit) -> AnalogTileSpec:
    """The analog tile unit a mapped unit is built as."""
    return AnalogTileSpec.from_config(cfg.with_sections(
        tile={"row_tiles": unit.row_tiles, "col_tiles": unit.col_tiles}))


@dataclasses.dataclass(frozen=True)
class LayerSpecs:
    """The specs of the units every layer is made of, for a config (``tokens`` = KV
    capacity)."""

    tokens: int
    rq: RequantSpec
    tq_d: TokenQuantSpec
    tq_ff: TokenQuantSpec
    ln: LayerNormSpec
    act: ActivationSpec
    sm: SoftmaxSpec
    dcim: DcimSpec
    x_bits: int

    @classmethod
    def from_config(cls, cfg: Config) -> LayerSpecs:
        tokens = cfg.dcim.rows
        if cfg.numerics.act_scale != "per_token":
            raise ValueError("the accelerator scales activations per token: numerics.act_scale "
                             f"must be 'per_token', not {cfg.numerics.act_scale!r}")
        act = ActivationSpec.from_config(cfg)
        if act.function != "relu" and act.in_bits != cfg.numerics.act_bits:
            raise ValueError(
                f"the accelerator requantises the FFN's output to act_bits for GELU: "
                f"nonlinear.gelu_in_bits must be numerics.act_bits ({cfg.numerics.act_bits}), "
                f"not {act.in_bits}")
        if cfg.nonlinear.prob_bits > cfg.numerics.act_bits:
            raise ValueError(
                f"probabilities are the value macros' inputs: nonlinear.prob_bits must be <= "
                f"numerics.act_bits ({cfg.numerics.act_bits}), not {cfg.nonlinear.prob_bits}")
        tq = TokenQuantSpec.from_config(cfg)
        return cls(tokens=tokens, rq=RequantSpec.from_config(cfg), tq_d=tq,
                   tq_ff=dataclasses.replace(tq, d=cfg.model.d_ff),
                   ln=LayerNormSpec.from_config(cfg), act=act,
                   sm=dataclasses.replace(SoftmaxSpec.from_config(cfg), max_len=tokens),
                   dcim=DcimSpec.from_config(cfg), x_bits=cfg.nonlinear.residual_bits)


def row_layernorm(m: Module, name: str, ln: LayerNorm, src, avail, dst, run, tokens: int,
                  width: int) -> None:
    """A LayerNorm engine: row ``t`` of a buffer (``src``: its read port, the buffer's side)
    through ``ln`` into the stream ``dst``, once ``avail > t`` and the previous row's last
    output is out; idle and at token 0 while ``run`` is low."""
    started = Signal(range(tokens + 1), name=f"{name}_started")
    busy = Signal(name=f"{name}_busy")
    go = run & (avail > started) & ~busy
    m.d.comb += [src.start.eq(go), src.token.eq(started), src.first.eq(0), src.count.eq(width)]
    wiring.connect(m, src.data, ln.i_stream)
    m.d.comb += [dst.valid.eq(ln.o_stream.valid), dst.payload.eq(ln.o_stream.payload.y),
                 ln.o_stream.ready.eq(1)]
    with m.If(go):
        m.d.sync += [started.eq(started + 1), busy.eq(1)]
    with m.If(ln.o_stream.valid & ln.o_stream.payload.last):
        m.d.sync += busy.eq(0)
    with m.If(~run):
        m.d.sync += [started.eq(0), busy.eq(0)]


def _row_done(m: Module, done, name: str) -> Signal:
    """A pulse in the cycle after a buffer's row count moved."""
    last = Signal.like(done, name=f"{name}_last")
    pulse = Signal(name=f"{name}_pulse")
    m.d.sync += last.eq(done)
    m.d.comb += pulse.eq(last != done)
    return pulse


class TransformerLayer(wiring.Component):
    """Layer ``layer`` of ``mapping``'s model (an encoder's or a decoder's: ``model.kind``).

    Members
    -------
    run : In(1); n : In(range(tokens + 1)); n_final : In(1)
        The sequence: in progress, tokens received so far, all received.
    base : In(range(tokens + 1))
        Tokens in the K and V cache before this run's (decoder only).
    x_avail : In(range(tokens + 1))
        Rows of the layer input buffer.
    x_src0, x_src1 : Out(row_read_signature)
        Two read ports of the layer input buffer (QKV feeder, O residual).
    y_stream : Out(stream.Signature(signed(x_bits)))
        The layer output, token by token (always taken).
    y_done : In(range(tokens + 1))
        Rows of the layer output buffer.
    param : In(param_signature(addr_bits))
        Word writes to the register map (every region of this layer and its tile units).
    xbar<u> : Out(shell_signature(unit spec))
        The crossbar shell of every tile unit ``u`` of the layer.
    """

    def __init__(self, cfg: Config, mapping: Mapping, layer: int, regmap: RegisterMap):
        self.cfg, self.mapping, self.layer, self.regmap = cfg, mapping, layer, regmap
        self.decoder = cfg.model.kind == "decoder"
        self.specs = s = LayerSpecs.from_config(cfg)
        self.units = {name: mapping.units_of(layer, name)
                      for name in ("q", "k", "v", "o", "ff1", "ff2")}
        d, tokens = cfg.model.d_model, s.tokens
        members = {
            "run": In(1), "n": In(range(tokens + 1)), "n_final": In(1),
            "x_avail": In(range(tokens + 1)),
            "x_src0": Out(row_read_signature(tokens, d, s.x_bits)),
            "x_src1": Out(row_read_signature(tokens, d, s.x_bits)),
            "y_stream": Out(stream.Signature(signed(s.x_bits))),
            "y_done": In(range(tokens + 1)),
            "param": In(param_signature(regmap.addr_bits)),
        }
        if self.decoder:
            members["base"] = In(range(tokens + 1))
        for us in self.units.values():
            for u in us:
                members[f"xbar{u.index}"] = Out(shell_signature(unit_spec(cfg, u)))
        super().__init__(members)

    def _region_port(self, m: Module, name: str) -> wiring.PureInterface:
        """A parameter port for region ``name`` of the layer (:func:`region_port`)."""
        r = self.regmap.region(name if name.startswith("tile") else f"l{self.layer}.{name}")
        return region_port(m, self.param, r, name.replace(".", "_"))

    def elaborate(self, platform):
        m = Module()
        cfg, s = self.cfg, self.specs
        d, heads = cfg.model.d_model, cfg.model.n_heads
        dh, f, tokens = d // heads, cfg.model.d_ff, s.tokens
        a8 = cfg.numerics.act_bits

        # -- tile units -------------------------------------------------------------------------
        tiles = {}
        for name, us in self.units.items():
            tiles[name] = []
            for u in us:
                tile = AnalogTile(unit_spec(cfg, u))
                m.submodules[f"tile{u.index}"] = tile
                wiring.connect(m, tile.xbar, wiring.flipped(getattr(self, f"xbar{u.index}")))
                csr = self._region_port(m, f"tile{u.index}")
                m.d.comb += [tile.csr.addr.eq(csr.addr), tile.csr.data.eq(csr.data[:16]),
                             tile.csr.we.eq(csr.we)]
                tiles[name].append(tile)

        def feeder(name, tq, unit_names):
            units = [t for n in unit_names for t in tiles[n]]
            fd = TileFeeder(tokens, tq, [t.spec for t in units])
            m.submodules[f"feed_{name}"] = fd
            for i, t in enumerate(units):
                wiring.connect(m, getattr(fd, f"u{i}"), t.i_stream)
            m.d.comb += fd.run.eq(self.run)
            return fd

        def drainer(name, unit_names, narrow, residual):
            pairs = [(t, u) for n in unit_names for t, u in zip(tiles[n], self.units[n],
                                                                 strict=True)]
            dr = TileDrainer(tokens, [(t.spec, u.channels) for t, u in pairs], s.rq, narrow,
                             residual, max(1, (self.regmap.region(f"l{self.layer}.{name}").words
                                               - 1).bit_length()))
            m.submodules[f"drain_{name}"] = dr
            for i, (t, _) in enumerate(pairs):
                wiring.connect(m, t.result, getattr(dr, f"u{i}"))
            wiring.connect(m, self._region_port(m, name), dr.param)
            m.d.comb += dr.run.eq(self.run)
            return dr

        # -- buffers ------------------------------------------------------------------------------
        bufs = {"q": TokenBuffer(tokens, d, a8), "ctx": TokenBuffer(tokens, d, s.x_bits),
                "x1": TokenBuffer(tokens, d, s.x_bits, readers=2),
                "a": TokenBuffer(tokens, f, s.x_bits)}
        if self.decoder:  # the LayerNorms' outputs, before the matrices that read them
            bufs.update(xn=TokenBuffer(tokens, d, s.x_bits), x1n=TokenBuffer(tokens, d, s.x_bits))
        for name, b in bufs.items():
            m.submodules[f"buf_{name}"] = b
            m.d.comb += b.clear.eq(~self.run)

        def pre_layernorm(name, src, avail, buf):
            """A decoder's LayerNorm engine: rows of ``src`` into ``buf``."""
            row_layernorm(m, name, self._layernorm(m, name), src, avail, buf.w_stream,
                          self.run, tokens, d)

        # -- macros: K and V of every head --------------------------------------------------------
        macros = {}  # K only computes scores, V only weighted sums: each its trees alone
        for h in range(heads):
            for op, computes in (("k", SCORES), ("v", WEIGHTED)):
                macros[op, h] = mc = DigitalCim(s.dcim, computes=(computes,))
                m.submodules[f"{op}cim{h}"] = mc

        # -- QKV ----------------------------------------------------------------------------------
        fq = feeder("qkv", s.tq_d, ("q", "k", "v"))
        if self.decoder:
            pre_layernorm("ln1", wiring.flipped(self.x_src0), self.x_avail, bufs["xn"])
            m.d.comb += fq.avail.eq(bufs["xn"].done)
            wiring.connect(m, fq.src, bufs["xn"].r0)
        else:
            m.d.comb += fq.avail.eq(self.x_avail)
            wiring.connect(m, fq.src, wiring.flipped(self.x_src0))
        dq = drainer("qkv", ("q", "k", "v"), True, None)
        m.d.comb += [fq.exp_token.eq(dq.token), dq.exp.eq(fq.exp)]
        # route: q to its buffer, k and v by head into a collector, then WRITE at the token's
        # row (its position in the cache for a decoder)
        idx = Signal(range(3 * d))
        o = dq.o_stream
        part = Signal(range(3))
        col = Signal(range(d))
        m.d.comb += [part.eq(Mux(idx < d, 0, Mux(idx < 2 * d, 1, 2))), col.eq(idx - part * d)]
        kv_vec = Signal(dh * a8)
        kv_count = Signal(range(dh + 1))
        kv_full = Signal()
        kv_head = Signal(range(max(heads, 2)))
        kv_is_v = Signal()
        m.d.comb += [o.ready.eq((part == 0) | ~kv_full),
                     bufs["q"].w_stream.valid.eq(o.valid & (part == 0)),
                     bufs["q"].w_stream.payload.eq(o.payload[:a8].as_signed())]
        with m.If(o.valid & o.ready):
            m.d.sync += idx.eq(Mux(idx == 3 * d - 1, 0, idx + 1))
            with m.If(part != 0):
                m.d.sync += [kv_vec.eq(Cat(kv_vec[a8:], o.payload[:a8])),
                             kv_count.eq(kv_count + 1)]
                with m.If(kv_count == dh - 1):
                    m.d.sync += [kv_full.eq(1), kv_head.eq(col // dh), kv_is_v.eq(part == 2)]
        # every token's K and V are in the macros, registered: it switches every macro's
        # command port (and starts the attention engine) a cycle after the last row is done
        assert KV_READY_DELAY == 1 and QKV_RELEASE_DELAY == 1
        kv_ready = Signal()
        m.d.sync += kv_ready.eq(self.n_final & (dq.drained == self.n))
        wrote = Signal()
        last_write = Signal()
        m.d.comb += last_write.eq(kv_is_v & (kv_head == heads - 1))
        row = dq.token + self.base if self.decoder else dq.token
        eng = AttentionEngine(tokens, d, heads, s.dcim, s.sm, s.rq, s.x_bits == a8,
                              max(1, (self.regmap.region(f"l{self.layer}.attn").words - 1)
                                  .bit_length()), causal=self.decoder)
        m.submodules.attention = eng
        for (op, h), mc in macros.items():
            cmd = mc.i_stream
            with m.If(kv_ready):
                wiring.connect(m, getattr(eng, f"{op}{h}"), cmd)
            with m.Else():
                m.d.comb += [cmd.valid.eq(kv_full & (kv_head == h) & (kv_is_v == (op == "v"))),
                             cmd.payload.op.eq(WRITE), cmd.payload.addr.eq(row),
                             cmd.payload.data.as_value().eq(kv_vec)]
                with m.If(cmd.valid & cmd.ready):
                    m.d.sync += [kv_full.eq(0), kv_count.eq(0)]
                    m.d.comb += wrote.eq(last_write)
            wiring.connect(m, mc.o_stream, getattr(eng, f"{op}r{h}"))
        # the row is done the cycle after its last WRITE (registered: the drainer's release
        # reaches the q, k and v units)
        wrote_q = Signal()
        m.d.sync += wrote_q.eq(wrote)
        m.d.comb += dq.row_done.eq(wrote_q)

        # -- attention ----------------------------------------------------------------------------
        m.d.comb += [eng.run.eq(self.run), eng.n.eq(self.n), eng.kv_ready.eq(kv_ready)]
        if self.decoder:
            m.d.comb += eng.base.eq(self.base)
        wiring.connect(m, eng.q_src, bufs["q"].r0)
        wiring.connect(m, eng.o_stream, bufs["ctx"].w_stream)
        wiring.connect(m, self._region_port(m, "attn"), eng.param)

        # -- O: context -> o unit -> + x -> x1 (encoder: through LayerNorm 1) ---------------------
        fo = feeder("o", s.tq_d, ("o",))
        m.d.comb += fo.avail.eq(bufs["ctx"].done)
        wiring.connect(m, fo.src, bufs["ctx"].r0)
        do = drainer("o", ("o",), False, d)
        m.d.comb += [fo.exp_token.eq(do.token), do.exp.eq(fo.exp)]
        wiring.connect(m, do.res_src, wiring.flipped(self.x_src1))
        if self.decoder:
            wiring.connect(m, do.o_stream, bufs["x1"].w_stream)
        else:
            ln1 = self._layernorm(m, "ln1")
            wiring.connect(m, do.o_stream, ln1.i_stream)
            m.d.comb += [bufs["x1"].w_stream.valid.eq(ln1.o_stream.valid),
                         bufs["x1"].w_stream.payload.eq(ln1.o_stream.payload.y),
                         ln1.o_stream.ready.eq(1)]
        m.d.comb += do.row_done.eq(_row_done(m, bufs["x1"].done, "x1"))

        # -- FFN1: x1 (decoder: through LayerNorm 2) -> ff1 units -> GELU -> a --------------------
        ff = feeder("ff1", s.tq_d, ("ff1",))
        if self.decoder:
            pre_layernorm("ln2", bufs["x1"].r0, bufs["x1"].done, bufs["x1n"])
            m.d.comb += ff.avail.eq(bufs["x1n"].done)
            wiring.connect(m, ff.src, bufs["x1n"].r0)
        else:
            m.d.comb += ff.avail.eq(bufs["x1"].done)
            wiring.connect(m, ff.src, bufs["x1"].r0)
        df = drainer("ff1", ("ff1",), True, None)
        m.d.comb += [ff.exp_token.eq(df.token), df.exp.eq(ff.exp)]
        m.submodules.act = act = Activation(s.act)
        # narrow: the requantiser's low in_bits hold the code
        m.d.comb += [act.i_stream.valid.eq(df.o_stream.valid),
                     act.i_stream.payload.eq(df.o_stream.payload[: s.act.in_bits]),
                     df.o_stream.ready.eq(act.i_stream.ready)]
        wiring.connect(m, act.o_stream, bufs["a"].w_stream)
        self._activation_params(m, act)
        m.d.comb += df.row_done.eq(_row_done(m, bufs["a"].done, "a"))

        # -- FFN2: a -> ff2 unit -> + x1 -> y (encoder: through LayerNorm 2) ----------------------
        f2 = feeder("ff2", s.tq_ff, ("ff2",))
        m.d.comb += f2.avail.eq(bufs["a"].done)
        wiring.connect(m, f2.src, bufs["a"].r0)
        d2 = drainer("ff2", ("ff2",), False, d)
        m.d.comb += [f2.exp_token.eq(d2.token), d2.exp.eq(f2.exp)]
        wiring.connect(m, d2.res_src, bufs["x1"].r1)
        if self.decoder:
            wiring.connect(m, d2.o_stream, wiring.flipped(self.y_stream))
        else:
            ln2 = self._layernorm(m, "ln2")
            wiring.connect(m, d2.o_stream, ln2.i_stream)
            m.d.comb += [self.y_stream.valid.eq(ln2.o_stream.valid),
                         self.y_stream.payload.eq(ln2.o_stream.payload.y),
                         ln2.o_stream.ready.eq(self.y_stream.ready)]
        m.d.comb += d2.row_done.eq(_row_done(m, self.y_done, "y"))
        return m

    def _layernorm(self, m: Module, name: str) -> LayerNorm:
        ln = LayerNorm(self.specs.ln)
        m.submodules[name] = ln
        connect_layernorm_params(m, ln, self._region_port(m, name))
        return ln

    def _activation_params(self, m: Module, act: Activation) -> None:
        port = self._region_port(m, "act")
        if self.specs.act.function == "lut":
            m.d.comb += [act.table_we.eq(port.we), act.table_addr.eq(port.addr),
                         act.table_data.eq(port.data)]
        elif self.specs.act.function == "poly":
            raise ValueError("the accelerator's GELU is the table: nonlinear.gelu_method must "
                             "be 'lut'")


def region_port(m: Module, param, region, name: str) -> wiring.PureInterface:
    """The parameter port of one register-map region: word writes of ``param`` inside it, at
    the word address within it, in two registered steps: whether the write is inside the
    region (a register of its own), then the port (address within the region, data and
    write) beside the region's block, loaded by that register. Each step has one wire across
    the chip in it, not two: the shared parameter port fans out to every region."""
    port = param_signature(max(1, (region.words - 1).bit_length())).create(path=(f"p_{name}",))
    inside = param.addr < region.end
    if region.base:  # (a comparison with 0 would be constant: Verilator warns)
        inside &= param.addr >= region.base
    hit = Signal(name=f"p_{name}_hit")
    # (a copy of the address and data per region, identical, which synthesis merges into one)
    addr = Signal.like(param.addr, name=f"p_{name}_addr_q")
    data = Signal.like(param.data, name=f"p_{name}_data_q")
    m.d.sync += [hit.eq(param.we & inside), addr.eq(param.addr), data.eq(param.data)]
    # the port's address and data load only with a write into the region: registers of
    # different regions loading the same values every cycle would be merged into one by
    # synthesis, which would fan out to every region again
    m.d.sync += port.we.eq(hit)
    with m.If(hit):
        m.d.sync += [port.addr.eq(addr - region.base), port.data.eq(data)]
    return port


def connect_layernorm_params(m: Module, ln: LayerNorm, port) -> None:
    """Word writes to a ``layernorm`` region: the shift at word 0; element ``i``'s gamma at
    ``LN_ELEMENT_BASE + 4 i``, beta's low and high words after it (the high word commits)."""
    gamma = Signal(signed(32))
    beta_lo = Signal(32)
    shift = Signal(len(ln.shift))
    rel = port.addr - LN_ELEMENT_BASE
    element = rel >> 2
    with m.If(port.we & (port.addr == 0)):
        m.d.sync += shift.eq(port.data)
    # (an If chain: a Switch's case statement would be incomplete in Verilog)
    with m.If(port.we & (port.addr >= LN_ELEMENT_BASE)):
        with m.If(rel[:2] == 0):
            m.d.sync += gamma.eq(port.data)
        with m.Elif(rel[:2] == 1):
            m.d.sync += beta_lo.eq(port.data)
        with m.Elif(rel[:2] == 2):
            m.d.comb += [ln.param_we.eq(1), ln.param_addr.eq(element),
                         ln.param_gamma.eq(gamma),
                         ln.param_beta.eq(Cat(beta_lo, port.data).as_signed())]
    m.d.comb += ln.shift.eq(shift)
