"""Combinational steps shared by the blocks: the integer steps of :mod:`cimforge.golden.numerics`,
and multiplexing that simulates the same in every simulator."""

from __future__ import annotations

from amaranth import Cat, Const, Format, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data

__all__ = ["PackedArray", "carry_save_sum", "clamp_shift", "digit_shift", "limit",
           "partial_products", "round_shift", "round_shift_var", "round_shift_var_staged",
           "saturate_add", "saturate_sum", "saturate_sum_unsigned", "select", "select_onehot",
           "tree_sum"]


class PackedArray(data.ArrayLayout):
    """An :class:`~amaranth.lib.data.ArrayLayout` whose signals carry no per-element names
    into the generated Verilog. For an ``ArrayLayout`` signal Amaranth emits a wire and an
    assignment per element, in every module the signal passes through: a MiniLM layer's
    accelerator was 40 MB of Verilog, mostly those, and took minutes to convert. Elements
    are indexed as in any ``ArrayLayout``; only the debug names go."""

    def format(self, value, format_spec):
        if format_spec != "":
            raise ValueError(f"Format specifier {format_spec!r} is not supported for layouts")
        return Format("{}", Value.cast(value))


def limit(m: Module, value, bits: int, saturate: bool, name: str) -> Signal:
    """``value`` clamped (``saturate``) or wrapped to signed ``bits``, as a new signal
    (:func:`cimforge.golden.numerics.saturate` / :func:`cimforge.golden.numerics.wrap`).

    Written as multiplexers, not ``m.If``: a conditional combinational block becomes an
    ``always @*`` in the generated Verilog, which Icarus does not evaluate at time 0, so a
    value that never changes (an unused channel's 0) would read as X there."""
    out = Signal(signed(bits), name=name)
    if saturate:
        hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
        m.d.comb += out.eq(Mux(value > hi, hi, Mux(value < lo, lo, value)))
    else:
        m.d.comb += out.eq(value[:bits])
    return out


def round_shift(m: Module, value, shift: int, mode: str, name: str) -> Signal:
    """Signed ``value / 2^shift`` rounded by ``mode`` (:func:`cimforge.golden.numerics.round_shift`:
    ``floor``, ``half_up``, ``half_even``), as a new signal."""
    out = Signal(signed(len(value) - shift + 1), name=name)
    q = value >> shift
    rest = value[:shift]
    half = 1 << (shift - 1)
    if mode == "floor":
        m.d.comb += out.eq(q)
    elif mode == "half_up":
        m.d.comb += out.eq(q + (rest >= half))
    elif mode == "half_even":
        m.d.comb += out.eq(q + ((rest > half) | ((rest == half) & q[0])))
    else:
        raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")
    return out


def select(index, values: list):
    """``values[index]`` as a chain of 2-way multiplexers. (An ``Array`` lookup becomes a
    ``case`` statement in the generated Verilog, which Icarus does not evaluate at time 0 when
    its inputs never change: constant tables there read as X.)"""
    out = values[0]
    for i, v in enumerate(values[1:], start=1):
        out = Mux(index == i, v, out)
    return out


def select_onehot(hot, values: list):
    """``values[i]`` where bit ``i`` of ``hot`` is the one set (0 where none is), as an
    and-or: no comparison before it, and no condition (a conditional block is an ``always
    @*`` that Icarus does not evaluate while its inputs keep their initial values)."""
    out = Mux(hot[0], values[0], 0)
    for i, v in enumerate(values[1:], start=1):
        out = out | Mux(hot[i], v, 0)
    return out


def tree_sum(values: list):
    """Sum as a balanced adder tree (widths grow by one bit per level, not per term)."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def digit_shift(digit, input_bits: int, dac_bits: int, digits: int):
    """Weight exponent of input digit ``digit`` (a signal): ``digit * dac_bits``, and
    ``input_bits - 1`` for the last digit, the sign bit (:func:`cimforge.config.digit_shift`).
    With a 1-bit DAC that is the digit itself."""
    if dac_bits == 1:
        return digit
    return Mux(digit == digits - 1, input_bits - 1, digit * dac_bits)


def round_shift_var(m: Module, value, shift, mode: str, name: str) -> Signal:
    """Signed ``value / 2^shift`` for an unsigned signal ``shift`` (0 passes ``value``
    through), rounded by ``mode`` (:func:`cimforge.golden.numerics.round_shift_var`), as a new
    signal."""
    out = Signal(signed(len(value) + 1), name=name)
    width = len(value)
    if 2 ** len(shift) - 1 > width:
        # a shift beyond the width rounds like a shift by the width: |value / 2^width| <= 1/2
        clamped = Signal(range(width + 1), name=f"{name}_shift")
        m.d.comb += clamped.eq(Mux(shift > width, width, shift))
        shift = clamped
    q = Signal(signed(len(value)), name=f"{name}_q")
    m.d.comb += q.eq(value >> shift)
    if mode == "floor":
        m.d.comb += out.eq(q)
        return out
    ones = Const((1 << width) - 1, width)
    rest = value.as_unsigned() & ~(ones << shift)[:width]
    half = Mux(shift == 0, 0, Const(1, width) << (shift - 1)[:len(shift)])[:width]
    if mode == "half_up":
        up = (shift != 0) & (rest >= half)
    elif mode == "half_even":
        up = (shift != 0) & ((rest > half) | ((rest == half) & q[0]))
    else:
        raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")
    m.d.comb += out.eq(q + up)
    return out


# -- pipelined forms -------------------------------------------------------------------------
# The same functions as above, cut so that a unit can register between the parts (a stall
# pipeline's stages): for timing, not for a different result.


def saturate_add(m: Module, a, b, bits: int, name: str) -> Signal:
    """``limit(m, a + b, bits, True, name)`` for signed ``a`` and ``b``, with the decision
    off the adder's carry chain: the sum is cut at bit ``bits - 1``, its low bits added
    (``low``, carry ``c``) while the high parts of ``a`` and ``b`` are added apart (``k``,
    a few bits): the sum fits signed ``bits`` iff ``k + c`` is -1 or 0, both cases
    decided before the carry arrives, and it is negative where it does not fit iff ``k`` is.
    Only a multiplexer by ``c`` follows the chain."""
    a, b = Value.cast(a), Value.cast(b)
    if not (a.shape().signed and b.shape().signed) or max(len(a), len(b)) < bits:
        return limit(m, a + b, bits, True, name)
    n = bits - 1
    hi, lo = (1 << n) - 1, -(1 << n)
    a, b = (Cat(v, v[-1].replicate(n + 1 - len(v))).as_signed() if len(v) <= n else v
            for v in (a, b))  # each with a high part, if only a sign
    low = Signal(n + 1, name=f"{name}_low")
    m.d.comb += low.eq(a[:n] + b[:n])
    k = Signal(signed(max(len(a), len(b)) - n + 1), name=f"{name}_k")
    m.d.comb += k.eq(a[n:].as_signed() + b[n:].as_signed())
    c = low[n]
    fits = Mux(c, (k == -2) | (k == -1), (k == -1) | (k == 0))
    top = Mux(c, k == -2, k == -1)  # the result's sign bit where it fits
    out = Signal(signed(bits), name=name)
    m.d.comb += out.eq(Mux(fits, Cat(low[:n], top), Mux(k[-1], lo, hi)))
    return out


def saturate_sum(m: Module, q, up, bits: int, name: str) -> Signal:
    """``limit(m, q + up, bits, True, name)`` for a signed ``q`` and a 1-bit ``up`` (a
    rounding's increment) with an adder only ``bits`` wide: a ``q`` outside signed ``bits``
    saturates whatever ``up``, and inside it ``q + up`` overflows only from the top limit,
    where it saturates to ``q``."""
    q = Value.cast(q)
    if bits >= len(q) or not q.shape().signed:
        return limit(m, q + up, bits, True, name)
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    out = Signal(signed(bits), name=name)
    inc = Signal(signed(bits), name=f"{name}_inc")
    m.d.comb += inc.eq(q[:bits].as_signed() + up)
    top = q[bits - 1:]
    fits = top.all() | ~top.any()
    at_hi = q[:bits - 1].all() & ~q[bits - 1]
    m.d.comb += out.eq(Mux(fits, Mux(at_hi, hi, inc), Mux(q[-1], lo, hi)))
    return out


def saturate_sum_unsigned(m: Module, q, up, bits: int, name: str) -> Signal:
    """``q + up`` clamped to unsigned ``bits`` (``0 .. 2^bits - 1``) for a ``q`` and a 1-bit
    ``up`` (a rounding's increment), with an adder only ``bits`` wide and the decision beside
    it: a negative ``q`` gives 0 whatever ``up`` (``q + up <= 0``); a ``q`` with a bit set at
    or above bit ``bits``, or ``q = 2^bits - 1`` with ``up``, gives the top; any other
    ``q + up`` fits."""
    q = Value.cast(q)
    if not q.shape().signed:
        q = Cat(q, Const(0, 1)).as_signed()
    if len(q) < bits + 1:
        q = Cat(q, q[-1].replicate(bits + 1 - len(q))).as_signed()
    top = (1 << bits) - 1
    inc = Signal(unsigned(bits), name=f"{name}_inc")
    m.d.comb += inc.eq(q[:bits] + up)
    over = q[:bits].all() & up
    if len(q) > bits + 1:
        over = over | q[bits:-1].any()
    out = Signal(unsigned(bits), name=name)
    m.d.comb += out.eq(Mux(q[-1], 0, Mux(over, top, inc)))
    return out


def partial_products(a, b, piece: int = 17) -> list[tuple[int, Value]]:
    """``a * b`` as ``sum(p << offset for offset, p in ...)``: ``a`` cut into ``piece``-bit
    unsigned slices from bit 0 up (the last with ``a``'s signedness), each multiplied by the
    whole ``b``. With ``piece`` 17 each product fits one 18x18 multiplier (ECP5's
    MULT18X18D) for a ``b`` of up to 17 bits, and the products can be registered before
    they are summed."""
    a = Value.cast(a)
    out = []
    for lo in range(0, len(a), piece):
        hi = min(lo + piece, len(a))
        s = a[lo:hi]
        if hi == len(a) and a.shape().signed:
            s = s.as_signed()
        out.append((lo, s * b))
    return out


def carry_save_sum(m: Module, values: list, bits: int, name: str) -> Signal:
    """The sum of ``values`` modulo ``2^bits`` (exact where it fits signed ``bits``), as a
    new signal, with a single carry chain: three terms at a time reduced to two by full
    adders without carries between the bits (``a ^ b ^ c`` and the majority, one bit up),
    then one adder."""
    vals = [Value.cast(v) for v in values]
    terms = []
    for v in vals:
        t = Signal(bits, name=f"{name}_t{len(terms)}")
        m.d.comb += t.eq(Cat(v, v[-1].replicate(bits - len(v)))
                         if len(v) < bits and v.shape().signed else v[:bits])
        terms.append(t)
    while len(terms) > 2:
        a, b, c, *rest = terms
        s = Signal(bits, name=f"{name}_s{len(rest)}")
        cy = Signal(bits, name=f"{name}_c{len(rest)}")
        m.d.comb += [s.eq(a ^ b ^ c), cy.eq(Cat(Const(0, 1), (a & b) | (a & c) | (b & c)))]
        terms = [s, cy, *rest]
    out = Signal(signed(bits), name=name)
    m.d.comb += out.eq(sum(terms[1:], terms[0]))
    return out


def clamp_shift(m: Module, shift, width: int, name: str):
    """An unsigned right ``shift`` of a ``width``-bit value, limited to ``width`` (a shift
    beyond the width rounds like a shift by the width: ``|value / 2^width| <= 1/2``); the
    shift itself when its field cannot exceed ``width``."""
    if 2 ** len(shift) - 1 <= width:
        return shift
    out = Signal(range(width + 1), name=name)
    m.d.comb += out.eq(Mux(shift > width, width, shift))
    return out


def round_shift_var_staged(m: Module, stage, value, shift, mode: str, name: str,
                           carry: dict, fine_bits: int | None = None
                           ) -> tuple[Value, Value, dict]:
    """:func:`round_shift_var` cut by one pipeline stage: ``stage(values)`` registers a dict
    of values and returns the registered signals (:meth:`StallPipeline.stage`); ``carry``
    is registered alongside. ``shift`` must not exceed ``len(value)``
    (:func:`clamp_shift`).

    Returns ``(q, up, carried)``, combinational after the stage: ``q = value >> shift``
    (``len(value)`` bits, signed), ``up`` the rounding's increment (1 bit: the result is
    ``q + up``, :func:`saturate_sum`) and the registered ``carry``.

    ``value * 2`` is shifted right by ``shift`` in two steps, by the shift's high bits (a
    multiple of ``2^k``) before the stage and by its low ``k`` bits after it (``k =
    fine_bits``, by default half the shift's bits, rounded up; fewer leave less after the
    stage, for a result that goes on through more logic in its cycle): the lowest bit
    of the result is the half below ``q`` (``rest >= half``), and the bits shifted out,
    ORed (``sticky``, gathered a group of ``2^k`` at a time before the stage and from the
    remainder after it), say whether the rest is above the half. Shift 0 finds the half 0
    (the doubling's zero), as :func:`round_shift_var` rounds nothing there."""
    if mode not in ("floor", "half_up", "half_even"):
        raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")
    value = Value.cast(value)
    width = len(value)
    sbits = len(shift)
    k = (sbits + 1) // 2 if fine_bits is None else fine_bits  # shifted after the stage
    if not 0 < k <= sbits:
        raise ValueError(f"fine_bits must be in 1..{sbits} (the shift's bits), not {k!r}")
    group = 1 << k
    v2 = Signal(signed(width + 1), name=f"{name}_x2")
    m.d.comb += v2.eq(Cat(Const(0, 1), value).as_signed())
    coarse = shift[k:]
    u = Signal(signed(width + 1), name=f"{name}_u")
    m.d.comb += u.eq(v2 >> Cat(Const(0, k), coarse))
    regs = {"u": u, "fine": shift[:k]}
    if mode == "half_even":  # the sticky of the coarse step: any bit below coarse * 2^k
        prefix = [Const(0, 1)]
        for lo in range(0, width + 1, group):
            prefix.append(prefix[-1] | v2[lo:min(lo + group, width + 1)].any())
        regs["sticky"] = Signal(name=f"{name}_sticky")
        m.d.comb += regs["sticky"].eq(Cat(*prefix).bit_select(coarse, 1))
    r = stage({**regs, **carry})
    u, fine = r["u"], r["fine"]
    t = Signal(signed(width + 1), name=f"{name}_t")
    m.d.comb += t.eq(u >> fine)
    q = t[1:].as_signed()
    if mode == "floor":
        up = Const(0, 1)
    elif mode == "half_up":
        up = t[0]
    else:
        below = [Const(0, 1)]  # any of u's low j bits: the ones the fine step drops
        for j in range(1, group):
            below.append(below[-1] | u[j - 1] if j - 1 < len(u) else below[-1])
        sticky = r["sticky"] | Cat(*below).bit_select(fine, 1)
        up = t[0] & (sticky | t[1])
    return q, up, {key: r[key] for key in carry}
