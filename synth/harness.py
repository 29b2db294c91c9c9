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
(``fold_outputs``) folds them instead: a chain of ``ceil(out_bits / 3)`` flip-flops, each
taking the one before it XOR three neighbouring output bits (one LUT4), shifted every cycle
to ``so``; the chain follows the port order, so a stage sits by the unit whose bits it takes.
Every output bit still reaches ``so`` (a change of any one flips it some cycles later), so
nothing can be optimised away; the wrapper has no ``load`` pin.

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

__all__ = ["HARNESS_TOP", "Port", "top_ports", "harness_verilog"]

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


def harness_verilog(verilog: str, top: str, fold_outputs: bool = False,
                    reset_buffer: str | None = None) -> str:
    """Verilog of ``synth_top`` around module ``top`` (whose text is ``verilog``); with
    ``fold_outputs`` the outputs go into an XOR-folding chain, not a loadable register; with
    ``reset_buffer`` (a cell instance, ``{i}`` and ``{o}`` its input and output nets) the
    block's reset goes through that buffer."""
    ports = top_ports(verilog, top)
    clocked = {p.name for p in ports} >= {"clk"}
    data = [p for p in ports if p.name not in ("clk", "rst")]
    ins = [p for p in data if p.direction == "input"]
    outs = [p for p in data if p.direction == "output"]
    n_in, n_out = sum(p.width for p in ins), sum(p.width for p in outs)
    if n_out == 0:
        raise ValueError(f"module {top!r} has no output: nothing of it would survive synthesis")
    if fold_outputs:
        k = -(-n_out // 3)  # chain length: three output bits into each stage
        pad = 3 * k - n_out
        padded = f"{{{pad}'b0, out_w}}" if pad else "out_w"
        chain = "{1'b0}" if k == 1 else f"{{fold_q[{k - 2}:0], 1'b0}}"
        # stage j takes output bits 3j .. 3j + 2, neighbours of one port (of one unit, as a
        # rule), and the stage before it the three before those: the chain follows the ports
        # and pulls no unit towards another
        capture = [
            f"  reg [{k - 1}:0] fold_q;",
            f"  wire [{3 * k - 1}:0] out_p = {padded};",
            f"  wire [{k - 1}:0] fold_in;",
            "  genvar fold_j;",
            "  generate",
            f"    for (fold_j = 0; fold_j < {k}; fold_j = fold_j + 1) begin : fold",
            "      assign fold_in[fold_j] = out_p[3 * fold_j] ^ out_p[3 * fold_j + 1]"
            " ^ out_p[3 * fold_j + 2];",
            "    end",
            "  endgenerate",
        ]
        update = f"    fold_q <= {chain} ^ fold_in;"
        observe, load_pin = f"  assign so = fold_q[{k - 1}];", ""
        what = f"folded three to a flip-flop into a {k}-stage XOR chain"
    else:
        capture = [f"  reg [{n_out - 1}:0] out_q;"]
        update = ("    if (load) out_q <= out_w; else "
                  + ("out_q <= 1'b0;" if n_out == 1
                     else f"out_q <= {{1'b0, out_q[{n_out - 1}:1]}};"))
        observe, load_pin = "  assign so = out_q[0];", "input wire load, "
        what = "into one"
    lines = [
        f"// out-of-context wrapper of {top}: {n_in} input bits from a shift register, "
        f"{n_out} output bits {what} (cimforge synth)",
        f"module {HARNESS_TOP}(input wire clk, input wire rst, input wire si, "
        f"{load_pin}output wire so);",
        "  reg rst_q;",
        *(["  wire rst_g;", "  " + reset_buffer.format(i="rst_q", o="rst_g")]
          if reset_buffer else []),
        f"  reg [{max(n_in, 1) - 1}:0] in_q;",
        *capture,
        f"  wire [{n_out - 1}:0] out_w;",
        "  always @(posedge clk) begin",
        "    rst_q <= rst;",
        f"    {_shift_in('in_q', max(n_in, 1), 'si')}",
        update,
        "  end",
        observe,
    ]
    conns = []
    if clocked:
        conns.append(".clk(clk)")
    if any(p.name == "rst" for p in ports):
        conns.append(".rst(rst_g)" if reset_buffer else ".rst(rst_q)")
    offset = 0
    for p in ins:
        conns.append(f".{_id(p.name)}(in_q[{offset + p.width - 1}:{offset}])")
        offset += p.width
    offset = 0
    for p in outs:
        conns.append(f".{_id(p.name)}(out_w[{offset + p.width - 1}:{offset}])")
        offset += p.width
    lines.append(f"  {top} dut (\n    " + ",\n    ".join(conns) + "\n  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
