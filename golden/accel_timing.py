"""Cycle model of the accelerator core (``hw/accelerator.py``): the cycle of every input beat's
acceptance and every output beat, from the config, the run's length (and a decoder's cache
length) and the host's stream behaviour; and the lower bounds on a run's latency
(docs/hw-accelerator.md, "Timing").

The core's engines take tokens in order and meet only at the scratchpad buffers, whose row
counts say when a token's row is there; no buffer ever fills (each holds a whole sequence), so
no engine waits on another except for data. The model follows each engine token by token with
the rules its RTL follows, and the units' own cycle models for what happens inside them:

* a *single pass* (a row through a unit that is idle when it starts: the embedding LayerNorm,
  a feeder's per-token scaling, a drainer's requantiser, LayerNorm and GELU, every step of an
  attention pass) is the unit model's schedule of that one row, shifted to its start;
* a tile unit runs vectors back to back: its model is run on every vector offered so far,
  with the drainer's releases (the drainer takes a result once the previous token's row is
  finished downstream, and releases it when this row is).

Cycles are counted as in :mod:`cimforge.verif.streams`: cycle 0 is the first cycle the host
may offer a beat, with the core idle and its parameters written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cimforge.config import Config
from cimforge.golden.analog_tile import AnalogTileSpec, AnalogTileTiming
from cimforge.golden.dcim import DcimTiming
from cimforge.golden.mapping import Mapping, map_model

__all__ = ["AcceleratorTiming", "AccelSchedule", "Bounds", "DRAIN_ACC_STAGES"]

READ_LATENCY = 3  # a buffer read port: first element three cycles after its start
# a drainer registers the channel it selects among its units' result ports, then the
# channel with its parameters, before its requantiser (hw/tile_drainer.py): that many
# stages after the units' result pipelines
DRAIN_ACC_STAGES = 2
# cycles from the row count of the last K and V row to the attention engine's start (the
# layer registers that every K and V is in the macros)
KV_READY_DELAY = 1
# cycles from the last K or V WRITE to the QKV drainer's release of the row (registered)
QKV_RELEASE_DELAY = 1


@dataclass
class AccelSchedule:
    """A predicted run: input beats' acceptance, output beats' first offer and transfer, and
    per engine the cycle each token's row was complete (``rows[name][t]``: from this cycle on
    the row is in the engine's output buffer)."""

    accepted: list[int] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)
    rows: dict[str, list[int]] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)  # cycles each resource works

    @property
    def latency(self) -> int:
        """Cycles from the first input beat's acceptance to the last output beat's transfer."""
        return self.taken[-1] - self.accepted[0] + 1


def _shifted(schedule_fn, count: int, start: int, first: int = READ_LATENCY) -> list[int]:
    """Cycles a unit's results are taken for a row of ``count`` items offered back to back
    from ``start + first`` into the idle unit, its sink always ready."""
    s = schedule_fn([first] + [None] * (count - 1))
    return [start + c for c in s.taken]


class AcceleratorTiming:
    """Cycle model of :class:`cimforge.hw.accelerator.AcceleratorCore` for ``cfg``."""

    def __init__(self, cfg: Config, mapping: Mapping | None = None):
        from cimforge.hw.transformer_layer import LayerSpecs, unit_spec

        self.cfg = cfg
        self.decoder = cfg.model.kind == "decoder"
        self.mapping = mapping or map_model(cfg)
        self.specs = s = LayerSpecs.from_config(cfg)
        self.d, self.f = cfg.model.d_model, cfg.model.d_ff
        self.heads = cfg.model.n_heads
        self.dh = self.d // self.heads
        self.per_beat = cfg.accelerator.stream_bits // s.x_bits
        self.tiles: dict[str, AnalogTileTiming] = {}
        for name in ("q", "k", "v", "o", "ff1", "ff2"):
            timings = {self._tile_key(unit_spec(cfg, u))
                       for u in self.mapping.units_of(0, name)}
            assert len(timings) == 1, f"the units of {name} must share their timing"
            self.tiles[name] = AnalogTileTiming(unit_spec(cfg, self.mapping.units_of(0, name)[0]))
        self.rq = s.rq.timing  # a drainer's and the attention engine's requantisers
        # a drainer's first requantised output, from its take: the first channel is read the
        # cycle after and enters the requantiser through the units' result pipeline and the
        # drainer's register; with a residual, once the residual row's first value (a buffer
        # read) is requantised too
        enter = 1 + AnalogTileTiming.RESULT_DEPTH + DRAIN_ACC_STAGES
        self.drain_first = enter + self.rq.latency
        self.drain_res_first = max(enter, READ_LATENCY + self.rq.latency) + self.rq.latency
        self.act = s.act.timing
        self.dcim = DcimTiming(s.dcim)
        # single-row passes, relative to their start (a reader's start)
        self._ln = _shifted(s.ln.timing.schedule, self.d, 0)
        self._tq_d = _shifted(s.tq_d.timing.schedule, self.d, 0)
        self._tq_ff = _shifted(s.tq_ff.timing.schedule, self.f, 0)
        self._passes_by_keys: dict[int, tuple[int, int]] = {}

    @staticmethod
    def _tile_key(spec: AnalogTileSpec) -> tuple:
        return (spec.reads_per_vector, spec.read_cycles)

    def bounds(self, n: int, base: int = 0) -> Bounds:
        """Lower bounds on the latency of an ``n``-token run at full rate (a decoder's after
        ``base`` cached tokens).

        ``bound`` is the larger of the busiest resource's work (a matrix's tile units do
        ``n`` vectors) and the critical path of the data dependencies (the last token in, its
        embedding LayerNorm, every layer's chain for one token -- q/k/v, one attention pass,
        o, FFN -- and its output beats). ``tight`` is a resource-constrained bound: a matrix's
        units cannot start before the first token's context exists, which needs every
        token's K and V (no sooner than the k units' ``n`` vectors), then do their ``n``
        vectors, and the last one still has the rest of its chain after it. Any schedule of
        this hardware takes at least ``tight`` cycles. A decoder has no such barrier (query
        ``t`` needs the K and V of tokens up to ``t`` only): its ``tight`` is ``bound``."""
        if self.decoder:
            return _decoder_bounds(self, n, base)
        return _bounds(self, n)

    def step_split(self, base: int) -> dict[str, int]:
        """Where the cycles of a decoder's decode step go (one token after ``base`` cached,
        at full rate, nothing overlapping): the tile units' reads of the vectors on the
        token's chain (k, o, ff1, ff2 of every layer), the digital-CIM macros' SCORES and
        WEIGHTED of every head, the softmax rows, the LayerNorm rows (two a layer and the
        final one), and the rest (the streams, the feeders' scaling, the drainers'
        requantisers, the query and context moves, the units' pipelines); the parts sum to
        the step's latency."""
        if not self.decoder:
            raise ValueError("a decode step is a decoder's: model.kind must be 'decoder'")
        layers, heads, keys = self.cfg.model.n_layers, self.heads, base + 1
        vec = {name: t.spec.reads_per_vector * t.spec.read_cycles
               for name, t in self.tiles.items()}
        softmax = self.specs.sm.timing.schedule([False] * (keys - 1) + [True],
                                                [0] + [None] * (keys - 1)).taken[-1] + 1
        parts = {"tile reads": layers * (vec["k"] + vec["o"] + vec["ff1"] + vec["ff2"]),
                 "digital-CIM": layers * heads * 2 * self.dcim.latency,
                 "softmax": layers * heads * softmax,
                 "LayerNorm": (2 * layers + 1) * (self._ln[-1] + 1)}
        parts["the rest"] = self.schedule(1, base=base).latency - sum(parts.values())
        return parts

    # -- the run -------------------------------------------------------------------------------

    def schedule(self, n: int, offered: Sequence[int | None] | None = None,
                 sink_ready: Callable[[int], bool] | None = None, base: int = 0
                 ) -> AccelSchedule:
        """Predict one run of ``n`` tokens (a decoder's after ``base`` cached tokens): input
        beat ``i`` offered from cycle ``offered[i]`` (``None``: the cycle after beat ``i - 1``
        was accepted; default: every beat so) and held until taken; the host ready for output
        beats in cycle ``c`` when ``sink_ready(c)`` (always by default)."""
        d, epb = self.d, self.per_beat
        beats_per_token = -(-d // epb)
        beats = n * beats_per_token
        offered = list(offered) if offered is not None else [0] + [None] * (beats - 1)
        if len(offered) != beats:
            raise ValueError(f"{n} tokens take {beats} beats, not {len(offered)}")
        ready = sink_ready or (lambda c: True)
        out = AccelSchedule()

        # input: a beat, then its codes one per cycle; a row is there the cycle after its last
        rows_h0, acc, col, last = [], [], 0, -1
        for o in offered:
            start = (acc[-1] + 1) if (o is None and acc) else (0 if o is None else o)
            a = max(start, last + 1)
            acc.append(a)
            codes = min(epb, d - col)
            last = a + codes  # the cycle its last code is written; ready again after it
            col = (col + codes) % d
            if col == 0:
                rows_h0.append(last + 1)
        out.accepted = acc
        ln_pass = lambda g: g + self._ln[-1] + 1  # noqa: E731 (a LayerNorm engine's row)
        if self.decoder:  # the input buffer is x0; the final LayerNorm before the output
            rows_x = rows_h0
        else:  # the embedding LayerNorm, a row at a time
            out.rows["h0"] = rows_h0
            rows_x = self._passes(rows_h0, ln_pass)
        out.rows["x0"] = rows_x
        for layer in range(self.cfg.model.n_layers):
            rows_x = self._layer(layer, n, base, rows_x, out)
            out.rows[f"x{layer + 1}"] = rows_x
        if self.decoder:
            rows_x = self._passes(rows_x, ln_pass)
            out.rows["xo"] = rows_x
        self._output(rows_x, n, ready, out)
        return out

    @staticmethod
    def _passes(avail: list[int], done_after: Callable[[int], int]) -> list[int]:
        """Rows through a one-row-at-a-time engine: row ``t`` starts once it is there and the
        previous pass is over; ``done_after(start)`` is when its row is complete downstream
        (the engine is free again from that cycle)."""
        rows, free = [], 0
        for a in avail:
            g = max(a, free)
            rows.append(done_after(g))
            free = rows[-1]
        return rows

    def _feed_and_drain(self, units: str, avail: list[int], tq: list[int],
                        drain: Callable[[int, int], tuple[int, int]]) -> list[int]:
        """A feeder, a matrix's tile units and their drainer over every token: ``avail[t]``
        the cycle row ``t`` is in the source buffer; ``tq`` the scaling pass (cycles its
        outputs are taken, relative to the read's start); ``drain(t, take)`` -> (cycle the
        row is in the destination, cycle the drainer is free again). The drainer releases the
        units' results in the cycle before it is free."""
        tile = self.tiles[units]
        free_at: list[int] = []  # the drainer is busy from a take until it is free again
        done: list[int] = []

        def release(t: int, valid: int) -> int:
            if t == len(done):  # token t's drain, once: from the first cycle it may take
                take = max(valid, free_at[-1]) if free_at else valid
                row, free = drain(t, take)
                done.append(row)
                free_at.append(free)
            return free_at[t] - 1

        free_feeder = 0
        run = tile.run(release)  # vector t's offer waits for vector t - 1's acceptance
        for a in avail:
            start = max(a, free_feeder)
            # offered once the collector is full, the cycle after the scaling pass
            free_feeder = run.step(start + tq[-1] + 1) + 1
        return done

    def _attention_pass(self, keys: int) -> tuple[int, int]:
        """One (token, head) pass over ``keys`` keys from its first cycle: (cycles to its last
        context value written, cycles until the engine may start the next pass)."""
        if keys not in self._passes_by_keys:  # the same for every pass over as many keys
            self._passes_by_keys[keys] = self._attention_pass_cycles(keys)
        return self._passes_by_keys[keys]

    def _attention_pass_cycles(self, keys: int) -> tuple[int, int]:
        dh = self.dh
        scores = dh + READ_LATENCY  # q read, SCORES from the cycle after its last value
        result = scores + self.dcim.latency  # the scores are taken
        lasts = [False] * (keys - 1) + [True]
        sm = self.specs.sm.timing.schedule(lasts, [0] + [None] * (keys - 1))
        probs = result + 1 + sm.taken[-1]  # the last probability
        context = probs + 1 + self.dcim.latency + 1  # WEIGHTED, its result, then CONTEXT
        last = context + dh - 1 + self.rq.latency  # the last context value out of the
        # requantiser (a value into it every cycle from the first)
        return last, last + 1

    def _keys(self, n: int, base: int, t: int) -> int:
        """The keys query ``t`` of a run attends to: all ``n`` (an encoder's), or the cache's
        ``base`` and this run's up to ``t`` (a decoder's)."""
        return base + t + 1 if self.decoder else n

    def _layer(self, layer: int, n: int, base: int, rows_x: list[int], out: AccelSchedule
               ) -> list[int]:
        d, f, heads = self.d, self.f, self.heads
        ln_last = self._ln[-1]  # a LayerNorm row's last output, relative to a read's start
        if self.decoder:  # LayerNorm 1 before the projections
            rows_x = self._passes(rows_x, lambda g: g + ln_last + 1)
            out.rows[f"l{layer}.xn"] = rows_x

        # QKV: q, k and v channels through one requantiser (outputs from take + drain_first,
        # one a cycle); each full k or v head is written to its macro the cycle after,
        # stalling the next k or v value one cycle (2 heads x 2 - 1 stalls); the last WRITE
        # is registered, the drainer releases the row the cycle after it and is free (and
        # counts the row) the cycle after that
        q_rows: list[int] = []
        first, res_first = self.drain_first, self.drain_res_first

        def drain_qkv(t: int, take: int) -> tuple[int, int]:
            q_rows.append(take + first + d)
            last = take + first + 3 * d - 1 + 2 * heads - 1
            done = last + 2 + QKV_RELEASE_DELAY
            return done, done

        kv = self._feed_and_drain("q", rows_x, self._tq_d, drain_qkv)
        out.rows[f"l{layer}.q"] = q_rows
        out.rows[f"l{layer}.kv"] = kv
        # attention: from the cycle after every K and V is written (the layer registers that
        # they are), (token, head) passes back to back
        ctx, start = [], kv[-1] + KV_READY_DELAY
        for t in range(n):
            last, step = self._attention_pass(self._keys(n, base, t))
            ctx.append(start + (heads - 1) * step + last + 1)
            start += heads * step
        out.rows[f"l{layer}.ctx"] = ctx

        # a drainer whose requantiser adds a residual: outputs from take + drain_res_first,
        # one a cycle; an encoder's LayerNorm after (its pass as if read from READ_LATENCY
        # cycles before the first output)
        def drain_res(t: int, take: int) -> tuple[int, int]:
            w = (take + res_first + d - 1 if self.decoder  # the last, written
                 else take + res_first - READ_LATENCY + ln_last)
            return w + 1, w + 2

        x1 = self._feed_and_drain("o", ctx, self._tq_d, drain_res)
        out.rows[f"l{layer}.x1"] = x1
        if self.decoder:  # LayerNorm 2 before the FFN
            x1 = self._passes(x1, lambda g: g + ln_last + 1)
            out.rows[f"l{layer}.x1n"] = x1

        # FFN1: outputs from take + drain_first, GELU (a stall pipeline) after
        act_depth = self.act.depth

        def drain_act(t: int, take: int) -> tuple[int, int]:
            w = take + first + act_depth + f - 1
            return w + 1, w + 2

        a = self._feed_and_drain("ff1", x1, self._tq_d, drain_act)
        out.rows[f"l{layer}.a"] = a
        return self._feed_and_drain("ff2", a, self._tq_ff, drain_res)

    def _output(self, rows: list[int], n: int, ready, out: AccelSchedule) -> None:
        """Token rows of the last buffer into beats: a row read from the cycle it is there
        and the previous token's beats are all out; ``per_beat`` codes, one a cycle, then the
        beat waits for the host."""
        d, epb = self.d, self.per_beat
        free = 0
        for t in range(n):
            g = max(rows[t], free)
            c = g + READ_LATENCY  # the first code is taken
            col = 0
            while col < d:
                codes = min(epb, d - col)
                offered = c + codes  # full the cycle after the beat's last code
                taken = offered
                while not ready(taken):
                    taken += 1
                out.offered.append(offered)
                out.taken.append(taken)
                col += codes
                c = taken + 1  # the next code, held by the reader, is taken
            free = out.taken[-1] + 1


@dataclass(frozen=True)
class Bounds:
    """Lower bounds on a sequence's latency (first input beat accepted to last output beat
    taken), with what they are made of."""

    work: dict[str, int]  # cycles each resource must work
    critical_path: int  # the data dependencies' longest chain
    bound: int  # max(busiest resource's work, critical path)
    tight: int  # max over resources of (earliest start + work + shortest tail)
    tight_resource: str  # the resource that sets ``tight``

    @property
    def busiest(self) -> str:
        return max(self.work, key=self.work.get)


def _bounds(tm: AcceleratorTiming, n: int) -> Bounds:
    """See :meth:`AcceleratorTiming.bounds`."""
    d, f, epb, heads = tm.d, tm.f, tm.per_beat, tm.heads
    beats = n * -(-d // epb)
    vec = {name: t.spec.reads_per_vector * t.spec.read_cycles for name, t in tm.tiles.items()}
    work = {"input stream": beats * (epb + 1) - 1, "output stream": beats}
    layers = tm.cfg.model.n_layers
    for name, v in vec.items():
        work[f"{name} units (each layer)"] = n * v
    work["digital-CIM macros (each)"] = n * tm.dcim.latency
    work["softmax (each layer)"] = n * n
    work["LayerNorm (each)"] = n * d
    # one token through a matrix: feed (read, scale, collect), its vector, the drain
    feed = {"d": tm._tq_d[-1] + 1, "ff": tm._tq_ff[-1] + 1}
    ln = tm._ln[-1]
    first_beat = 0
    row_in = -(-d // epb) * (epb + 1)  # a token's beats, each taken after its codes
    ln0 = ln + 1
    drain_qkv = tm.drain_first + 3 * d + 2 * heads + QKV_RELEASE_DELAY + KV_READY_DELAY
    drain_ln = tm.drain_res_first - READ_LATENCY + ln + 1
    drain_act = tm.drain_first + tm.act.depth + f
    pass_last, pass_step = tm._attention_pass(n)
    out_token = READ_LATENCY + -(-d // epb) * 2  # a token's beats at full rate
    one_layer_tail_from_ctx = (feed["d"] + vec["o"] + drain_ln + feed["d"] + vec["ff1"]
                               + drain_act + feed["ff"] + vec["ff2"] + drain_ln)
    # per layer: every K and V exists no sooner than the k units' work after the first token
    # is in, nor than the last token's own chain
    t = first_beat
    arrive_first, arrive_last = row_in, n * row_in
    tight, tight_at = 0, ""
    for _layer in range(layers):
        kv = max(arrive_first + ln0 * (t == 0) + feed["d"] + n * vec["k"] + drain_qkv,
                 arrive_last + ln0 * (t == 0) + feed["d"] + vec["k"] + drain_qkv)
        first_ctx = kv + pass_last + (heads - 1) * pass_step
        # the o units cannot start before the first context row, must do n vectors, and the
        # last one still has the rest of the layer (and the output) after it
        heads_tails = {
            "o units": (first_ctx + feed["d"], n * vec["o"],
                        drain_ln + feed["d"] + vec["ff1"] + drain_act + feed["ff"]
                        + vec["ff2"] + drain_ln),
            "ff1 units": (first_ctx + feed["d"] + vec["o"] + drain_ln + feed["d"],
                          n * vec["ff1"], drain_act + feed["ff"] + vec["ff2"] + drain_ln),
            "ff2 units": (first_ctx + feed["d"] + vec["o"] + drain_ln + feed["d"] + vec["ff1"]
                          + drain_act + feed["ff"], n * vec["ff2"], drain_ln),
        }
        later = (layers - 1 - _layer) * (feed["d"] + vec["k"] + drain_qkv + pass_last
                                          + one_layer_tail_from_ctx)
        for name, (head, w, tail) in heads_tails.items():
            total = head + w + tail + later + out_token
            if total > tight:
                tight, tight_at = total, name
        arrive_first = first_ctx + one_layer_tail_from_ctx
        arrive_last = arrive_first  # a lower bound: the next layer's rows come no sooner
        t += 1
    critical = (row_in * n + ln0 + layers * (feed["d"] + vec["k"] + drain_qkv + pass_last
                                              + one_layer_tail_from_ctx) + out_token)
    busiest = max(work.values())
    return Bounds(work, critical, max(busiest, critical), max(tight, busiest, critical),
                  tight_at)


def _decoder_bounds(tm: AcceleratorTiming, n: int, base: int) -> Bounds:
    """See :meth:`AcceleratorTiming.bounds`: a decoder's run of ``n`` tokens after ``base``."""
    d, f, epb = tm.d, tm.f, tm.per_beat
    beats = n * -(-d // epb)
    vec = {name: t.spec.reads_per_vector * t.spec.read_cycles for name, t in tm.tiles.items()}
    keys = [base + t + 1 for t in range(n)]
    work = {"input stream": beats * (epb + 1) - 1, "output stream": beats}
    for name, v in vec.items():
        work[f"{name} units (each layer)"] = n * v
    work["digital-CIM macros (each)"] = n * tm.dcim.latency
    work["softmax (each layer)"] = sum(keys)
    work["LayerNorm (each)"] = n * d
    feed_d, feed_ff = tm._tq_d[-1] + 1, tm._tq_ff[-1] + 1
    ln = tm._ln[-1] + 1  # a LayerNorm engine's row
    drain_qkv = tm.drain_first + 3 * d + 2 * tm.heads + QKV_RELEASE_DELAY + KV_READY_DELAY
    drain_res = tm.drain_res_first + d
    drain_act = tm.drain_first + tm.act.depth + f
    # the last token: its beats, then through every layer -- LayerNorm 1, its k vector, one
    # attention pass over every key, o, LayerNorm 2, the FFN -- the final LayerNorm, its beats
    layer = (ln + feed_d + vec["k"] + drain_qkv + tm._attention_pass(keys[-1])[0]
             + feed_d + vec["o"] + drain_res + ln + feed_d + vec["ff1"] + drain_act
             + feed_ff + vec["ff2"] + drain_res)
    row_in = -(-d // epb) * (epb + 1)
    out_token = READ_LATENCY + -(-d // epb) * 2
    critical = row_in * n + tm.cfg.model.n_layers * layer + ln + out_token
    bound = max(max(work.values()), critical)
    return Bounds(work, critical, bound, bound, "")
