"""The reciprocal pipeline softmax and LayerNorm share (:func:`cimforge.golden.nonlinear.reciprocal`
in registered stages), and the priority encoder it normalises with."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, unsigned

from cimforge.golden.nonlinear import NonlinearSpec, recip_seed_table
from cimforge.hw.numerics import select
from cimforge.hw.pipeline import registers

__all__ = ["bit_length", "newton_steps_staged", "reciprocal_pipeline",
           "reciprocal_pipeline_staged", "reciprocal_staged_depth"]


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


def reciprocal_staged_depth(steps: int) -> int:
    """Registered stages of :func:`reciprocal_pipeline_staged` with ``steps`` Newton-Raphson
    steps."""
    return 2 + 3 * steps


def reciprocal_pipeline_staged(m: Module, value, valid, tags: dict, spec: NonlinearSpec,
                               name: str):
    """:func:`reciprocal_pipeline` cut for timing, the same results: ``2 + 3 recip_steps``
    registered stages (:func:`reciprocal_staged_depth`), a new value every cycle; ``tags``
    travel alongside. ``value`` should come from a register: the first stage's priority
    encoder is most of a cycle.

    Stage 0 counts ``value``'s leading zeros ``lz`` and picks the ``recip_seed_bits`` bits
    below its leading one, the seed's index (priority encoders). Stage 1 normalises by one
    variable shift: ``value << lz`` has its leading one at the top, and a constant shift puts
    it at bit ``p = recip_bits`` (truncating below), which is the mantissa ``m`` with ``z =
    bitlen(value) - 1``; beside it the seed is looked up (a function of a few bits: one LUT
    level).
    Each Newton-Raphson step takes three stages, so that no multiplier has an adder before
    or after it in its cycle: ``u = (m r) >> p``; ``w = 2^(p+1) - u``; ``r = (r w) >> p``
    (``0 < u < 2^(p+1)`` since ``r <= 2^p``: ``w`` fits ``p + 2`` unsigned bits).

    Returns ``(valid, r, z, tags)`` of the last stage: ``1 / value ~ r / 2^(p + z)``; a zero
    ``value`` gives ``r = z = 0``.
    """
    p = spec.recip_bits
    width = len(value)
    sb = spec.recip_seed_bits
    lz = Signal(range(width + 1), name=f"{name}_lz")  # leading zeros (width for 0)
    index = Signal(sb, name=f"{name}_index")  # the seed's: the sb bits below the leading one
    lz_expr, index_expr = width, 0
    padded = Cat(Const(0, sb), value)
    for b in range(width):  # the highest set bit wins: later terms take priority
        lz_expr = Mux(value[b], width - 1 - b, lz_expr)
        index_expr = Mux(value[b], padded[b:b + sb], index_expr)
    m.d.comb += [lz.eq(lz_expr), index.eq(index_expr)]
    st = registers(m, {"valid": valid, "value": value, "lz": lz, "index": index,
                       "zero": value == 0, **tags}, f"{name}_r0")
    # value << lz has its leading one at bit width - 1: a constant shift puts it at bit p,
    # truncating below, so m = value << (p - z) or value >> (z - p) with z = width - 1 - lz
    top = Signal(unsigned(width), name=f"{name}_top")
    m.d.comb += top.eq(st["value"] << st["lz"])
    norm = Signal(unsigned(p + 1), name=f"{name}_m")
    m.d.comb += norm.eq(top >> (width - 1 - p) if width - 1 >= p else top << (p - width + 1))
    z = Signal(range(max(width, 1)), name=f"{name}_z")
    m.d.comb += z.eq(Mux(st["zero"], 0, width - 1 - st["lz"]))
    table = [int(v) for v in recip_seed_table(spec)]
    seed = Signal(unsigned(p + 1), name=f"{name}_seed")
    # the seed's index is norm[p - sb:p], found in stage 0; a zero value gets r = 0, which
    # the Newton steps keep (u = 0, r = (0 w) >> p): no multiplexer after the last one
    m.d.comb += seed.eq(Mux(st["zero"], 0, select(st["index"], table)))
    st = registers(m, {"valid": st["valid"], "m": norm, "r": seed, "z": z,
                       **{k: st[k] for k in tags}}, f"{name}_r1")
    two = 2 << p
    keep = ("valid", "m", "r", "z", *tags)
    for k in range(spec.recip_steps):
        u = Signal(unsigned(p + 2), name=f"{name}_u{k}")
        m.d.comb += u.eq((st["m"] * st["r"]) >> p)
        st = registers(m, {**{key: st[key] for key in keep}, "u": u}, f"{name}_s{k}u")
        w = Signal(unsigned(p + 2), name=f"{name}_w{k}")
        m.d.comb += w.eq(two - st["u"])
        st = registers(m, {**{key: st[key] for key in keep}, "w": w}, f"{name}_s{k}w")
        nr = Signal(unsigned(p + 1), name=f"{name}_nr{k}")
        m.d.comb += nr.eq((st["r"] * st["w"]) >> p)
        st = registers(m, {**{key: st[key] for key in keep if key != "r"}, "r": nr},
                       f"{name}_s{k}r")
    return st["valid"], st["r"], st["z"], {k: st[k] for k in tags}
