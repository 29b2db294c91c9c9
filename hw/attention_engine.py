"""The attention engine of one layer: ``softmax(q . K^T) . V`` per query token and head, on the
layer's digital-CIM macros (docs/hw-accelerator.md, "Engines").

Once every token's K and V are in the macros (``kv_ready``), for each query token ``t`` and
head ``h`` in order, one pass at a time: read ``q_(t,h)`` (``d_head`` int8 values) from the
Q buffer into a command; SCORES on head ``h``'s key macro; the first ``keys`` scores through the
softmax unit (a keep bit of 1 each, ``last`` on the ``keys``-th) -- ``keys`` is the sequence's
``n`` in an encoder, and ``base + t + 1`` in a causal decoder (the cache's ``base`` earlier
tokens and this run's up to ``t``); the probabilities into a command (zero beyond ``keys``:
rows of later or older tokens weigh nothing); WEIGHTED
on head ``h``'s value macro (probabilities as unsigned inputs); the ``d_head`` sums through the
requantiser (the layer's context multiplier) to the context buffer. A pass ends when its last
context value is out.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.accel_regmap import ATTENTION_REGS
from cimforge.golden.dcim import SCORES, WEIGHTED, DcimSpec
from cimforge.golden.requant import RequantSpec
from cimforge.golden.softmax import SoftmaxSpec
from cimforge.hw.dcim import command_layout, result_layout
from cimforge.hw.numerics import select_onehot
from cimforge.hw.requant import Requantizer
from cimforge.hw.scratchpad import row_read_signature
from cimforge.hw.softmax import Softmax
from cimforge.hw.tile_drainer import param_signature

__all__ = ["AttentionEngine"]


class AttentionEngine(wiring.Component):
    """Attention of one layer over ``heads`` heads of ``d_head`` on its macros.

    Parameters
    ----------
    tokens : int
        The KV capacity (``dcim.rows``).
    d, heads : int
    dcim : DcimSpec
    sm : SoftmaxSpec
        ``lanes == 1``, ``max_len == tokens``.
    rq : RequantSpec
    narrow : bool
        The context requantised to ``act_bits`` (else ``residual_bits``).
    addr_bits : int
    causal : bool
        Query ``t`` attends to the ``base + t + 1`` first keys (else to ``n``).

    Members
    -------
    run : In(1); n : In(range(tokens + 1)); kv_ready : In(1)
    base : In(range(tokens + 1))
        Tokens in the macros before this run's (causal only).
    q_src : Out(row_read_signature(tokens, d, act_bits))
    k0, v0, k1, v1, ... : Out(stream.Signature(command_layout(dcim)))
    kr0, vr0, ... : In(stream.Signature(result_layout(dcim)))
    o_stream : Out(stream.Signature(signed(residual_bits)))
        Context values, token by token, head by head.
    param : In(param_signature(addr_bits))
    """

    def __init__(self, tokens: int, d: int, heads: int, dcim: DcimSpec, sm: SoftmaxSpec,
                 rq: RequantSpec, narrow: bool, addr_bits: int, causal: bool = False):
        if sm.lanes != 1:
            raise ValueError(f"the accelerator's softmax takes one score per beat, not "
                             f"nonlinear.softmax_lanes = {sm.lanes}")
        self.tokens, self.d, self.heads, self.dh = tokens, d, heads, d // heads
        self.dcim, self.sm, self.rq, self.narrow = dcim, sm, rq, narrow
        self.causal = causal
        members = {
            "run": In(1),
            "n": In(range(tokens + 1)),
            "base": In(range(tokens + 1)),
            "kv_ready": In(1),
            "q_src": Out(row_read_signature(tokens, d, dcim.bits)),
            "o_stream": Out(stream.Signature(signed(rq.residual_bits))),
            "param": In(param_signature(addr_bits)),
        }
        for h in range(heads):
            members[f"k{h}"] = Out(stream.Signature(command_layout(dcim)))
            members[f"v{h}"] = Out(stream.Signature(command_layout(dcim)))
            members[f"kr{h}"] = In(stream.Signature(result_layout(dcim)))
            members[f"vr{h}"] = In(stream.Signature(result_layout(dcim)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        dc, dh, bits = self.dcim, self.dh, self.dcim.bits
        p = self.param
        regs = {name: Signal(SHIFT_BITS if "shift" in name else self.sm.mult_bits, name=name)
                for name in ATTENTION_REGS}
        for name, reg in regs.items():
            with m.If(p.we & (p.addr == ATTENTION_REGS[name])):
                m.d.sync += reg.eq(p.data[: len(reg)])

        m.submodules.softmax = sm = Softmax(self.sm)
        m.submodules.rq = rq = Requantizer(self.rq)
        m.d.comb += [sm.mult.eq(regs["score_mult"]), sm.shift.eq(regs["score_shift"])]

        t = Signal(range(self.tokens + 1))
        h = Signal(range(max(self.heads, 2)))
        h_hot = Signal(self.heads, init=1)  # h one-hot: bit i is h == i, a flip-flop
        count = Signal(range(dc.width + 1))  # elements moved in the current step
        qvec = Signal(dh * bits)
        scores = Signal(dc.rows * dc.acc_bits)
        probs = [Signal(bits, name=f"prob{r}") for r in range(dc.rows)]
        ctx = Signal(dh * dc.acc_bits)
        n = self.n
        # the keys query t attends to, registered (a copy of the sequence's length beside the
        # softmax): it is used from the pass's SOFTMAX step, many cycles after t or n moved
        keys = Signal(range(self.tokens + 1))
        m.d.sync += keys.eq(self.base + t + 1 if self.causal else n)

        issued = Signal(range(dh + 1))  # context items into the requantiser
        cmd = Signal(command_layout(dc))
        cmd_valid = Signal()
        weighting = Signal()  # the command is WEIGHTED (else SCORES)
        # every field driven by one expression (a field left at its default would be a
        # constant `always @*`, which Icarus never evaluates)
        m.d.comb += cmd.eq(Cat(Mux(weighting, WEIGHTED, SCORES), Const(0, dc.addr_bits),
                               Mux(weighting, Cat(*probs), qvec)))
        k_ready, v_ready = Signal(), Signal()
        k_result, v_result = Signal(result_layout(dc)), Signal(result_layout(dc))
        k_done, v_done = Signal(), Signal()  # a result is offered by head h's macro
        # head h's macros, selected by the one-hot h_hot: every value here is one expression
        # (and-or), none under a condition -- a conditional combinational block is an
        # `always @*` in Verilog, which Icarus does not evaluate until an input changes, and
        # a block whose inputs are all registers that hold their initial values (h_hot, the
        # step flags) would read X until then
        def pick(values):
            return select_onehot(h_hot, values)

        ks = [getattr(self, f"k{i}") for i in range(self.heads)]
        vs = [getattr(self, f"v{i}") for i in range(self.heads)]
        krs = [getattr(self, f"kr{i}") for i in range(self.heads)]
        vrs = [getattr(self, f"vr{i}") for i in range(self.heads)]
        for i, (kp, vp) in enumerate(zip(ks, vs, strict=True)):
            m.d.comb += [kp.payload.eq(cmd), vp.payload.eq(cmd),
                         kp.valid.eq(cmd_valid & ~weighting & h_hot[i]),
                         vp.valid.eq(cmd_valid & weighting & h_hot[i])]
        m.d.comb += [k_ready.eq(pick([kp.ready for kp in ks])),
                     v_ready.eq(pick([vp.ready for vp in vs])),
                     k_result.eq(pick([kr.payload.as_value() for kr in krs])),
                     v_result.eq(pick([vr.payload.as_value() for vr in vrs])),
                     k_done.eq(pick([kr.valid for kr in krs])),
                     v_done.eq(pick([vr.valid for vr in vrs]))]
        take_k, take_v = Signal(), Signal()
        for i in range(self.heads):
            m.d.comb += [getattr(self, f"kr{i}").ready.eq(take_k & h_hot[i]),
                         getattr(self, f"vr{i}").ready.eq(take_v & h_hot[i])]

        q = self.q_src
        m.d.comb += [q.token.eq(t), q.first.eq(h * dh), q.count.eq(dh)]
        si, so, ri = sm.i_stream, sm.o_stream, rq.i_stream
        # the pass's steps, as explicit state registers and an If per step for the registers
        # (a state machine's per-signal case statements are incomplete in Verilog, which
        # Verilator flags)
        steps = ("IDLE", "Q", "SCORES", "SCORES_WAIT", "SOFTMAX", "WEIGHTED", "WEIGHTED_WAIT",
                 "CONTEXT")
        # one flip-flop a step (one-hot): each step's logic, and the wide registers it loads,
        # start at a flip-flop rather than at a decode of an encoded state
        at = {name: Signal(name=f"step_{name.lower()}", init=name == "IDLE") for name in steps}

        def goto(name):
            m.d.sync += [flag.eq(step == name) for step, flag in at.items()]

        # the softmax's probabilities are taken in the pass's SOFTMAX step, the only one in
        # which it has a row: its ready is that step's flip-flop (it reaches every register of
        # the softmax's normalise pipeline, their stall enable, through one LUT). (A constant
        # ready would do as well in logic, but Icarus does not evaluate an `always @*` whose
        # inputs never change: the softmax's slot flags would stay X there)
        m.d.comb += so.ready.eq(at["SOFTMAX"])

        # the context values into the requantiser, one a cycle from the pass's CONTEXT step
        # on: `issuing` is that step with values left to issue (issued < d_head), a register,
        # so the context register's shift enable starts at a flip-flop
        issuing = Signal()
        sent = Signal(range(dc.rows + 1))  # scores into the softmax in the SOFTMAX step
        start_q = at["IDLE"] & self.run & self.kv_ready & (t < n)
        # what each step drives, as expressions of the step flags (see `pick` above)
        m.d.comb += [q.start.eq(start_q),
                     q.data.ready.eq(at["Q"]),
                     cmd_valid.eq(at["SCORES"] | at["WEIGHTED"]),
                     weighting.eq(at["WEIGHTED"]),
                     take_k.eq(at["SCORES_WAIT"]),
                     take_v.eq(at["WEIGHTED_WAIT"]),
                     si.valid.eq(at["SOFTMAX"] & (sent < keys)),
                     si.payload.scores[0].eq(scores[: dc.acc_bits]),
                     si.payload.keep.eq(1), si.payload.last.eq(sent == keys - 1),
                     ri.valid.eq(at["CONTEXT"] & issuing)]
        with m.If(start_q):
            m.d.sync += count.eq(0)
            goto("Q")
        with m.If(at["Q"]):
            with m.If(q.data.valid):
                m.d.sync += [qvec.eq(Cat(qvec[bits:], q.data.payload)), count.eq(count + 1)]
                with m.If(count == dh - 1):
                    goto("SCORES")
        with m.If(at["SCORES"]):
            with m.If(k_ready):
                goto("SCORES_WAIT")
        with m.If(at["SCORES_WAIT"]):
            with m.If(k_done):
                m.d.sync += [scores.eq(k_result.data.as_value()[: dc.rows * dc.acc_bits]),
                             count.eq(0), Cat(*probs).eq(0)]
                goto("SOFTMAX")
        with m.If(at["SOFTMAX"]):
            # scores in, one per cycle; probabilities collected as they come out
            with m.If(si.valid & si.ready):
                m.d.sync += [scores.eq(scores >> dc.acc_bits), sent.eq(sent + 1)]
            with m.If(so.valid):
                for r in range(dc.rows):
                    with m.If(count == r):
                        m.d.sync += probs[r].eq(so.payload.probs[0])
                m.d.sync += count.eq(count + 1)
                with m.If(so.payload.last):
                    m.d.sync += sent.eq(0)
                    goto("WEIGHTED")
        with m.If(at["WEIGHTED"]):
            with m.If(v_ready):
                goto("WEIGHTED_WAIT")
        with m.If(at["WEIGHTED_WAIT"]):
            with m.If(v_done):
                m.d.sync += [ctx.eq(v_result.data.as_value()[: dh * dc.acc_bits]),
                             count.eq(0), issuing.eq(1)]
                goto("CONTEXT")
        with m.If(at["CONTEXT"]):
            with m.If(ri.valid & ri.ready):
                m.d.sync += [ctx.eq(ctx >> dc.acc_bits), issued.eq(issued + 1),
                             issuing.eq(issued != dh - 1)]
            with m.If(self.o_stream.valid & self.o_stream.ready):
                m.d.sync += count.eq(count + 1)
                with m.If(count == dh - 1):
                    m.d.sync += issued.eq(0)
                    m.d.sync += h_hot.eq(h_hot.rotate_left(1))
                    with m.If(h_hot[self.heads - 1]):
                        m.d.sync += [h.eq(0), t.eq(t + 1)]
                    with m.Else():
                        m.d.sync += h.eq(h + 1)
                    goto("IDLE")
        r = self.rq
        m.d.comb += ri.payload.eq(Cat(ctx[: dc.acc_bits], Const(0, r.exp_field_bits),
                                      Const(0, r.bias_bits), regs["ctx_mult"],
                                      regs["ctx_shift"], Const(0, r.residual_bits),
                                      Const(int(self.narrow), 1)))
        wiring.connect(m, rq.o_stream, wiring.flipped(self.o_stream))
        with m.If(~self.run):
            m.d.sync += [t.eq(0), h.eq(0), h_hot.eq(1), issuing.eq(0),
                         *(flag.eq(step == "IDLE") for step, flag in at.items())]
        return m
