"""The reciprocal pipeline softmax and LayerNorm share (:func:`cimforge.golden.nonlinear.reciprocal`
in registered stages), and the priority encoder it normalises with."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned

from cimforge.golden.nonlinear import NonlinearSpec, recip_seed_table
from cimforge.hw.numerics import select
from cimforge.hw.pipeline import registers

__all__ = ["bit_length", "newton_steps_staged", "reciprocal_pipeline"]


def bit_length(m: Module, value, name: str) -> Signal:
    """Bit length of an unsigned value (0 for 0) as a priority encoder."""
    out = Signal(range(len(value) + 1), name=name)
    expr = 0
    for b in range(len(value)):  # the highest set bit wins: later terms take priority
        expr = Mux(value[b], b + 1, expr)
    m.d.comb += out.eq(expr)
    return out


def reciprocal_pipeline(m: Module, value, valid, tags: dict, spec: NonlinearSpec, name: str):
    """``1 / value`` for an unsigned ``value`` as ``2 + recip_steps`` registered stages, a new
    value every cycle; ``tags`` travel alongside.

    Stage 0 normalises: ``z = bitlen(value) - 1`` and the mantissa ``m = value << (p - z)``
    (or ``>> (z - p)``), ``p + 1`` bits with the leading one at bit ``p = recip_bits``.
    Stage 1 looks up the seed, indexed by the ``recip_seed_bits`` bits below the leading one
    (:func:`cimforge.golden.nonlinear.recip_seed_table`). Each further stage is one
    Newton-Raphson step, truncating: ``t = (m r) >> p``, ``r = (r (2^(p+1) - t)) >> p``.

    Returns ``(valid, r, z, tags)`` of the last stage: ``1 / value ~ r / 2^(p + z)``; a zero
    ``value`` gives ``r = z = 0``.
    """
    p = spec.recip_bits
    blen = bit_length(m, value, f"{name}_blen")
    z = Signal(range(max(len(value), 1)), name=f"{name}_z")
    m.d.comb += z.eq(Mux(blen == 0, 0, blen - 1))
    up_shift = Signal(range(p + 1), name=f"{name}_up_shift")  # p - z when z <= p
    down_shift = Signal(range(len(value) + 1), name=f"{name}_down_shift")  # z - p when z > p
    m.d.comb += [up_shift.eq(Mux(z > p, 0, p - z)), down_shift.eq(Mux(z > p, z - p, 0))]
    up = Signal(unsigned(p + 1), name=f"{name}_up")
    down = Signal(unsigned(p + 1), name=f"{name}_down")
    m.d.comb += [up.eq(value << up_shift), down.eq(value >> down_shift)]
    norm = Mux(z > p, down, up)

    st = registers(m, {"valid": valid, "m": norm, "z": z, "zero": value == 0, **tags},
                   f"{name}_r0")
    table = [int(v) for v in recip_seed_table(spec)]
    sb = spec.recip_seed_bits
    seed = select(st["m"][p - sb:p], table)
    r = Signal(unsigned(p + 1), name=f"{name}_seed")
    m.d.comb += r.eq(seed)
    st = registers(m, {**st, "r": r}, f"{name}_r1")
    two = 2 << p
    for k in range(spec.recip_steps):
        t = Signal(unsigned(p + 2), name=f"{name}_t{k}")
        m.d.comb += t.eq((st["m"] * st["r"]) >> p)
        nr = Signal(unsigned(p + 1), name=f"{name}_nr{k}")
        m.d.comb += nr.eq((st["r"] * (two - t)) >> p)
        st = registers(m, {**st, "r": nr}, f"{name}_r{2 + k}")
    r_out = Mux(st["zero"], 0, st["r"])
    z_out = Mux(st["zero"], 0, st["z"])
    return st["valid"], r_out, z_out, {k: st[k] for k in tags}


def newton_steps_staged(m: Module, st: dict, spec: NonlinearSpec, name: str):
    """The seed and Newton-Raphson steps of :func:`reciprocal_pipeline` on a mantissa already
    normalised, cut for timing: at most one multiplier between registers.

    ``st`` holds registered signals: ``valid``, ``m`` (``p + 1`` bits, leading one at bit
    ``p = recip_bits``) and any tags. The seed is looked up from ``m`` into the first stage;
    each step then takes three: ``u = m r`` (one multiplier); ``w = 2^(p+1) - (u >> p)``;
    ``r = (r w) >> p`` (one multiplier). For every seed and step ``0 < w < 2^(p+1)`` and
    ``r <= 2^p`` (:func:`cimforge.golden.nonlinear.reciprocal`), so both products are
    ``p + 1`` by ``p + 1`` bits: one 18x18 multiplier each at ``p <= 17``.

    Returns ``(stages, r)``: the dicts of the ``max(1, 3 recip_steps)`` registered stages
    (each with ``valid``, ``m`` and the tags) and the result ``r`` (``p + 1`` bits),
    combinational from the last stage: the caller registers it (a row's own register), one
    edge after the last stage.
    """
    p = spec.recip_bits
    table = [int(v) for v in recip_seed_table(spec)]
    sb = spec.recip_seed_bits
    seed = Signal(unsigned(p + 1), name=f"{name}_seed")
    m.d.comb += seed.eq(select(st["m"][p - sb:p], table))
    st = registers(m, {**st, "r": seed}, f"{name}_s0")
    stages = [st]
    two = 2 << p
    r_out = st["r"]
    for k in range(spec.recip_steps):
        u = Signal(unsigned(2 * p + 2), name=f"{name}_u{k}")
        m.d.comb += u.eq(st["m"] * st["r"])
        st = registers(m, {**st, "u": u}, f"{name}_a{k}")
        stages.append(st)
        w = Signal(unsigned(p + 1), name=f"{name}_w{k}")
        m.d.comb += w.eq(two - (st["u"] >> p))
        st = registers(m, {**{key: v for key, v in st.items() if key != "u"}, "w": w},
                       f"{name}_b{k}")
        stages.append(st)
        nr = Signal(unsigned(p + 1), name=f"{name}_nr{k}")
        m.d.comb += nr.eq((st["r"] * st["w"]) >> p)
        r_out = nr
        if k < spec.recip_steps - 1:
            st = registers(m, {**{key: v for key, v in st.items() if key != "w"}, "r": nr},
                           f"{name}_c{k}")
            stages.append(st)
    return stages, r_out
