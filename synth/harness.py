"""The out-of-context wrapper a block is placed and routed in.

A block's ports are far more than a package has pins (the accelerator top's crossbar ports
alone are thousands of bits), and a port driven straight from a pin puts the pad's delay in
every path. So each block is placed inside ``synth_top``: every input bit comes from a shift
register loaded one bit a cycle from pin ``si``, every output bit is captured into a second
shift register (parallel load while ``load`` is high, shifted out to pin ``so`` otherwise),
and the block's reset is ``rst`` registered once. Every path of the block then starts and
ends at a flip-flop, nothing can be optimised away (each input is controllable, each output
observable), and a purely combinational block gets an fmax too.

The accelerator top has about 8,000 output bits (every tile unit's crossbar pins): a load
multiplexer each would cost the wrapper 8,000 LUTs of the 85k part. Its wrapper
(``fold_outputs``) folds them instead, into a chain of ``ceil(bits / 3)`` flip-flops, each
taking the one before it XOR three neighbouring output bits (one LUT4), shifted every cycle
to a pin. Every output bit still reaches a pin (a change of any one flips it some cycles
later), so nothing can be optimised away; the wrapper has no ``load`` pin. The chains are
one per port group (:func:`port_group`: a crossbar shell's pins, a programming port's, the
host's buses), each with its own input shift register and its own pins ``si_<group>`` and
``so_<group>``, as a macro's pins are its own: one chain through every unit's ports (the
first form of this wrapper) tied the units into one line across the chip, and the placer
pulled each unit's output registers along it, away from the unit (``docs/ppa.md``). A
registered XOR tree per group (no order to follow) was tried too, and placed worse: more
flip-flops, its levels spread over the chip.

The accelerator top's reset reaches about 40,000 flip-flops: on general routing from one
flip-flop that is the longest path of the chip, where a design would put it on a clock
network. Its wrapper (``reset_buffer``: the target's global buffer, an ECP5 ``DCCA``) drives
the block's reset from ``rst`` registered once through that buffer; the blocks keep the plain
register.

The block keeps its own module boundary (``keep_hierarchy``), so Yosys reports its cells
apart from the wrapper's and does not optimise across the boundary. The wrapper adds
``in_bits + out_bits + 1`` flip-flops and about ``out_bits`` LUTs (the load multiplexers),
which the report states beside the block's own figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HARNESS_TOP", "Port", "top_ports", "port_group", "harness_verilog"]

HARNESS_TOP = "synth_top"

_DECL = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?(\S+)\s*;",
                   re.M)


@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # "input" or "output"
    width: int


def top_ports(verilog: str, top: str) -> list[Port]:
    """The ports of module ``top`` as its Verilog declares them."""
    start = re.search(rf"^module {re.escape(top)}\s*\(", verilog, re.M)
    if start is None:
        raise ValueError(f"module {top!r} is not in the Verilog")
    body = verilog[start.end():verilog.index("endmodule", start.end())]
    ports = []
    for direction, msb, lsb, name in _DECL.findall(body):
        width = abs(int(msb) - int(lsb)) + 1 if msb else 1
        ports.append(Port(name, direction, width))
    if not ports:
        raise ValueError(f"module {top!r} declares no ports")
    return ports


def _id(name: str) -> str:
    """A Verilog identifier as written before ``(``: an escaped one ends at white space."""
    return name + " " if name.startswith("\\") else name


def _shift_in(reg: str, width: int, source: str) -> str:
    return f"{reg} <= {source};" if width == 1 else f"{reg} <= {{{reg}[{width - 2}:0], {source}}};"


def port_group(name: str) -> str:
    """The group of a port in the folding wrapper: the interface it belongs to (``xbar3``
    of ``xbar3__wl``), or ``bus`` for a port of no interface (the host's AXI ports)."""
    return name.split("__", 1)[0] if "__" in name else "bus"


def _fold_chain(reg: str, width: int) -> tuple[list[str], str]:
    """A chain of ``ceil(width / 3)`` flip-flops ``reg`` folding the ``width`` bits of wire
    ``{reg}_w``; returns its declarations and its update statement."""
    k = -(-width // 3)  # chain length: three output bits into each stage
    pad = 3 * k - width
    padded = f"{{{pad}'b0, {reg}_w}}" if pad else f"{reg}_w"
    chain = "{1'b0}" if k == 1 else f"{{{reg}[{k - 2}:0], 1'b0}}"
    # stage j takes output bits 3j .. 3j + 2, neighbours of one port, and the stage before
    # it the three before those: the chain follows the ports of its group
    lines = [
        f"  reg [{k - 1}:0] {reg};",
        f"  wire [{width - 1}:0] {reg}_w;",
        f"  wire [{3 * k - 1}:0] {reg}_p = {padded};",
        f"  wire [{k - 1}:0] {reg}_in;",
        "  generate",
        f"    for ({reg}_j = 0; {reg}_j < {k}; {reg}_j = {reg}_j + 1) begin : {reg}_stage",
        f"      assign {reg}_in[{reg}_j] = {reg}_p[3 * {reg}_j] ^ {reg}_p[3 * {reg}_j + 1]"
        f" ^ {reg}_p[3 * {reg}_j + 2];",
        "    end",
        "  endgenerate",
    ]
    return [f"  genvar {reg}_j;", *lines], f"    {reg} <= {chain} ^ {reg}_in;"


def harness_verilog(verilog: str, top: str, fold_outputs: bool = False,
                    reset_buffer: str | None = None) -> str:
    """Verilog of ``synth_top`` around module ``top`` (whose text is ``verilog``); with
    ``fold_outputs`` each group of ports (:func:`port_group`) gets its own input shift
    register and its own XOR-folding chain of its outputs, with pins ``si_<group>`` and
    ``so_<group>``, not one loadable register; with ``reset_buffer`` (a cell instance, ``{i}``
    and ``{o}`` its input and output nets) the block's reset goes through that buffer."""
    ports = top_ports(verilog, top)
    clocked = {p.name for p in ports} >= {"clk"}
    data = [p for p in ports if p.name not in ("clk", "rst")]
    ins = [p for p in data if p.direction == "input"]
    outs = [p for p in data if p.direction == "output"]
    n_in, n_out = sum(p.width for p in ins), sum(p.width for p in outs)
    if n_out == 0:
        raise ValueError(f"module {top!r} has no output: nothing of it would survive synthesis")
    wires: dict[str, str] = {}  # port name -> the wrapper's bits it connects to
    if fold_outputs:
        decls, updates, pins, observe = [], [], [], []
        groups = sorted({port_group(p.name) for p in data})
        for g in groups:
            g_ins = [p for p in ins if port_group(p.name) == g]
            g_outs = [p for p in outs if port_group(p.name) == g]
            if g_ins:
                width = sum(p.width for p in g_ins)
                decls.append(f"  reg [{width - 1}:0] in_{g};")
                updates.append(f"    {_shift_in(f'in_{g}', width, f'si_{g}')}")
                pins.append(f"input wire si_{g}")
                wires.update(_slices(g_ins, f"in_{g}"))
            if g_outs:
                chain_decls, update = _fold_chain(f"fold_{g}", sum(p.width for p in g_outs))
                decls += chain_decls
                updates.append(update)
                k = -(-sum(p.width for p in g_outs) // 3)
                pins.append(f"output wire so_{g}")
                observe.append(f"  assign so_{g} = fold_{g}[{k - 1}];")
                wires.update(_slices(g_outs, f"fold_{g}_w"))
        what = (f"folded three to a flip-flop into XOR chains; {len(groups)} port groups, "
                "each with its own chains and pins")
    else:
        decls = [f"  reg [{max(n_in, 1) - 1}:0] in_q;", f"  reg [{n_out - 1}:0] out_q;",
                 f"  wire [{n_out - 1}:0] out_w;"]
        updates = [f"    {_shift_in('in_q', max(n_in, 1), 'si')}",
                   "    if (load) out_q <= out_w; else "
                   + ("out_q <= 1'b0;" if n_out == 1
                      else f"out_q <= {{1'b0, out_q[{n_out - 1}:1]}};")]
        pins = ["input wire si", "input wire load", "output wire so"]
        observe = ["  assign so = out_q[0];"]
        wires.update(_slices(ins, "in_q"))
        wires.update(_slices(outs, "out_w"))
        what = "into one"
    lines = [
        f"// out-of-context wrapper of {top}: {n_in} input bits from shift registers, "
        f"{n_out} output bits {what} (cimforge synth)",
        f"module {HARNESS_TOP}(input wire clk, input wire rst, {', '.join(pins)});",
        "  reg rst_q;",
        *(["  wire rst_g;", "  " + reset_buffer.format(i="rst_q", o="rst_g")]
          if reset_buffer else []),
        *decls,
        "  always @(posedge clk) begin",
        "    rst_q <= rst;",
        *updates,
        "  end",
        *observe,
    ]
    conns = []
    if clocked:
        conns.append(".clk(clk)")
    if any(p.name == "rst" for p in ports):
        conns.append(".rst(rst_g)" if reset_buffer else ".rst(rst_q)")
    conns += [f".{_id(p.name)}({wires[p.name]})" for p in ins + outs]
    lines.append(f"  {top} dut (\n    " + ",\n    ".join(conns) + "\n  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _slices(ports: list[Port], vector: str) -> dict[str, str]:
    """Each port's bits of ``vector``, the ports one after the other from bit 0."""
    out, offset = {}, 0
    for p in ports:
        out[p.name] = f"{vector}[{offset + p.width - 1}:{offset}]"
        offset += p.width
    return out
