"""The accelerator's core: every layer of the config's model on the generated blocks, between
a token stream in and a hidden-state stream out (docs/hw-accelerator.md).

The input stream carries the embedding codes of a run's tokens (signed ``residual_bits``,
``stream_bits / residual_bits`` per beat, element 0 in the lowest bits; a token's last beat is
padded with zeros; ``last`` on the run's last beat), written to the input buffer one element
per cycle (a beat is taken every ``stream_bits / residual_bits`` cycles). An encoder's input
buffer is ``h0``: the embedding LayerNorm takes each complete token into ``x0``. A decoder's
is ``x0`` itself. Every layer reads its input buffer and writes the next; the output stream
carries the last buffer's rows (a decoder's through the final LayerNorm, into ``xo``) in the
same packing, ``last`` on the run's last beat.

Run control: the first beat starts a run; ``last`` ends its input (``n``: the tokens
received complete); after the last output beat is taken, every buffer and engine is cleared in
one cycle and the next run may start. An encoder's run is a whole sequence. A decoder's run
continues the sequence in its K and V cache: ``kv_len`` tokens are cached, this run's token
``t`` is at position ``kv_len + t``, and when the run ends ``kv_len`` grows by ``n`` (a prefill
is a run of the prompt, a decode step a run of one token). ``kv_clear`` (a pulse, while idle)
empties the cache: the next run starts a new sequence.

Errors (sticky until cleared by the host): ``kv_overflow`` -- tokens beyond the capacity
(the KV capacity, less ``kv_len`` for a decoder) are dropped: the output has the tokens that
fit; ``tlast`` -- ``last`` on a beat that does not end a token (the partial token is dropped;
a run with no complete token ends without output).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.config import Config
from cimforge.golden.accel_regmap import RegisterMap, register_map
from cimforge.golden.mapping import Mapping, map_model
from cimforge.hw.crossbar_shell import shell_signature
from cimforge.hw.layernorm import LayerNorm
from cimforge.hw.scratchpad import TokenBuffer
from cimforge.hw.tile_drainer import param_signature
from cimforge.hw.transformer_layer import (
    LayerSpecs,
    TransformerLayer,
    connect_layernorm_params,
    region_port,
    row_layernorm,
    unit_spec,
)

__all__ = ["AcceleratorCore", "beat_layout", "ERRORS"]

ERRORS = {"kv_overflow": 0, "tlast": 1}


def beat_layout(cfg: Config) -> data.StructLayout:
    """A stream beat: ``data`` (``stream_bits``), ``last``."""
    return data.StructLayout({"data": cfg.accelerator.stream_bits, "last": 1})


class AcceleratorCore(wiring.Component):
    """The encoder of ``cfg`` on its mapping (see the module docstring).

    Members
    -------
    i_stream : In(stream.Signature(beat_layout(cfg)))
    o_stream : Out(stream.Signature(beat_layout(cfg)))
    param : In(param_signature(regmap.addr_bits))
        Word writes to the register map's parameter and tile regions (while idle).
    busy : Out(1)
        A run is in progress.
    tokens : Out(range(capacity + 1))
        Tokens of the current run received so far.
    kv_clear : In(1)
        Empty the K and V cache (a decoder's; taken while idle).
    kv_len : Out(range(capacity + 1))
        Tokens in the K and V cache (a decoder's; 0 for an encoder).
    errors : Out(len(ERRORS))
        Error events this cycle (bit per :data:`ERRORS`).
    xbar<u> : Out(shell_signature(...))
        The crossbar shell of every tile unit.
    """

    def __init__(self, cfg: Config, mapping: Mapping | None = None,
                 regmap: RegisterMap | None = None):
        self.cfg = cfg
        self.decoder = cfg.model.kind == "decoder"
        self.mapping = mapping or map_model(cfg)
        self.regmap = regmap or register_map(cfg, self.mapping)
        self.specs = s = LayerSpecs.from_config(cfg)
        sb = cfg.accelerator.stream_bits
        if sb % s.x_bits:
            raise ValueError(f"accelerator.stream_bits ({sb}) must be a multiple of "
                             f"nonlinear.residual_bits ({s.x_bits}): a beat carries whole codes")
        members = {
            "i_stream": In(stream.Signature(beat_layout(cfg))),
            "o_stream": Out(stream.Signature(beat_layout(cfg))),
            "param": In(param_signature(self.regmap.addr_bits)),
            "busy": Out(1),
            "tokens": Out(range(s.tokens + 1)),
            "kv_clear": In(1),
            "kv_len": Out(range(s.tokens + 1)),
            "errors": Out(len(ERRORS)),
        }
        for u in self.mapping.units:
            members[f"xbar{u.index}"] = Out(shell_signature(unit_spec(cfg, u)))
        super().__init__(members)

    @property
    def per_beat(self) -> int:
        """Codes per stream beat."""
        return self.cfg.accelerator.stream_bits // self.specs.x_bits

    def elaborate(self, platform):
        m = Module()
        cfg, s = self.cfg, self.specs
        d, tokens, xb, epb = cfg.model.d_model, s.tokens, s.x_bits, self.per_beat
        layers = cfg.model.n_layers

        clearing = Signal(init=1)  # one cycle between sequences (and out of reset)
        run = ~clearing
        m.d.sync += clearing.eq(0)

        # -- buffers: (h0,) x0 .. x_L (, xo) -----------------------------------------------------
        xs = []
        for i in range(layers + 1):
            b = TokenBuffer(tokens, d, xb, readers=2 if i < layers else 1)
            m.submodules[f"buf_x{i}"] = b
            xs.append(b)
        if self.decoder:
            inbuf = xs[0]
            m.submodules.buf_xo = outbuf = TokenBuffer(tokens, d, xb)
            extra = [outbuf]
        else:
            m.submodules.buf_h0 = inbuf = TokenBuffer(tokens, d, xb)
            outbuf = xs[-1]
            extra = [inbuf]
        for b in (*xs, *extra):
            m.d.comb += b.clear.eq(clearing)

        # -- the K and V cache's length (a decoder's) ---------------------------------------------
        kv_len = self.kv_len
        room = Signal(range(tokens + 1))  # tokens this run may have
        m.d.comb += room.eq(tokens - kv_len)
        with m.If(self.kv_clear & ~self.busy):
            m.d.sync += kv_len.eq(0)

        # -- input: beats -> codes -> the input buffer --------------------------------------------
        n_final = Signal()
        beat = Signal(cfg.accelerator.stream_bits)
        left = Signal(range(epb + 1))  # codes of the held beat still to write
        col = Signal(range(d))  # element of the token the next code is
        beat_last = Signal()
        ib = self.i_stream
        m.d.comb += ib.ready.eq(run & ~n_final & (left == 0))
        w = inbuf.w_stream
        writing = left != 0
        fits = inbuf.done < room  # the token being written fits the cache
        m.d.comb += [w.valid.eq(writing & fits), w.payload.eq(beat[:xb])]
        with m.If(ib.valid & ib.ready):
            m.d.sync += [beat.eq(ib.payload.data), left.eq(epb), beat_last.eq(ib.payload.last)]
        with m.If(writing):
            m.d.sync += [beat.eq(beat >> xb), col.eq(Mux(col == d - 1, 0, col + 1))]
            token_end = col == d - 1
            # the codes of a token's last beat beyond the token are padding
            m.d.sync += left.eq(Mux(token_end, 0, left - 1))
            with m.If(beat_last & ((left == 1) | token_end)):
                m.d.sync += n_final.eq(1)
                with m.If(~token_end):
                    m.d.comb += self.errors[ERRORS["tlast"]].eq(1)
            with m.If(token_end & ~fits):
                m.d.comb += self.errors[ERRORS["kv_overflow"]].eq(1)
        m.d.comb += [self.busy.eq(run & ((inbuf.done != 0) | writing | (col != 0))),
                     self.tokens.eq(inbuf.done)]
        n = inbuf.done

        # -- LayerNorm engines: an encoder's embedding LayerNorm (h0 -> x0), a decoder's final
        # one (x_L -> xo), a row at a time
        ln_name = "lnf" if self.decoder else "ln0"
        m.submodules[ln_name] = ln = LayerNorm(s.ln)
        r0 = self.regmap.region(ln_name)
        connect_layernorm_params(m, ln, region_port(m, self.param, r0, ln_name))
        src, dst = (xs[-1], outbuf) if self.decoder else (inbuf, xs[0])
        row_layernorm(m, ln_name, ln, src.r0, src.done, dst.w_stream, run, tokens, d)

        # -- layers -------------------------------------------------------------------------------
        for i in range(layers):
            lay = TransformerLayer(cfg, self.mapping, i, self.regmap)
            m.submodules[f"layer{i}"] = lay
            m.d.comb += [lay.run.eq(run), lay.n.eq(n), lay.n_final.eq(n_final),
                         lay.x_avail.eq(xs[i].done), lay.y_done.eq(xs[i + 1].done)]
            if self.decoder:
                m.d.comb += lay.base.eq(kv_len)
            wiring.connect(m, lay.x_src0, xs[i].r0)
            wiring.connect(m, lay.x_src1, xs[i].r1)
            wiring.connect(m, lay.y_stream, xs[i + 1].w_stream)
            # the parameter port fans out: each layer decodes its own regions
            m.d.comb += [lay.param.addr.eq(self.param.addr), lay.param.data.eq(self.param.data),
                         lay.param.we.eq(self.param.we)]
            for us in lay.units.values():
                for u in us:
                    wiring.connect(m, getattr(lay, f"xbar{u.index}"),
                                   wiring.flipped(getattr(self, f"xbar{u.index}")))

        # -- output: the last rows -> beats --------------------------------------------------------
        out = outbuf
        sent = Signal(range(tokens + 1))  # tokens whose beats are all out
        reading = Signal()
        orow = out.r0
        o_go = run & (out.done > sent) & ~reading
        m.d.comb += [orow.start.eq(o_go), orow.token.eq(sent), orow.first.eq(0),
                     orow.count.eq(d)]
        pack = Signal(cfg.accelerator.stream_bits)
        packed = Signal(range(epb + 1))
        o_col = Signal(range(d))
        full = Signal()
        ob = self.o_stream
        m.d.comb += [orow.data.ready.eq(~full), ob.valid.eq(full), ob.payload.data.eq(pack)]
        last_token = n_final & (sent == n - 1)
        ends = Signal()
        with m.If(orow.data.valid & ~full):
            m.d.sync += [pack.eq(pack | (orow.data.payload.as_unsigned() << (packed * xb))),
                         packed.eq(packed + 1), o_col.eq(Mux(o_col == d - 1, 0, o_col + 1))]
            with m.If((packed == epb - 1) | (o_col == d - 1)):
                m.d.sync += [full.eq(1), ends.eq(o_col == d - 1)]
        m.d.comb += ob.payload.last.eq(ends & last_token)
        with m.If(ob.valid & ob.ready):
            m.d.sync += [full.eq(0), pack.eq(0), packed.eq(0)]
            with m.If(ends):
                m.d.sync += [sent.eq(sent + 1), reading.eq(0)]
                with m.If(last_token):
                    m.d.sync += clearing.eq(1)
                    if self.decoder:
                        m.d.sync += kv_len.eq(kv_len + n)
        with m.If(o_go):
            m.d.sync += reading.eq(1)
        # a sequence that ended with no complete token: nothing to send
        with m.If(run & n_final & (n == 0) & ~writing):
            m.d.sync += clearing.eq(1)
        with m.If(clearing):
            m.d.sync += [n_final.eq(0), left.eq(0), col.eq(0), sent.eq(0), reading.eq(0),
                         full.eq(0), pack.eq(0), packed.eq(0), o_col.eq(0)]
        return m

