"""``synth.md`` and ``synth.json``: one row per synthesized top.

A row (``synth.json``'s ``"blocks"`` list) has:

* ``block``, ``target``, ``device``;
* ``cells``: the block's own cells by kind -- ``lut4``, ``carry`` (CCU2C, two LUT4 each),
  ``mux`` (PFUMX, L6MUX21), ``ff``, ``bram``, ``dsp``, ``lutram``, ``other``; for
  ``generic``: ``cells``, ``ff``, ``nand2_eq`` (NAND and NOR 1, NOT 1/2, a flip-flop 6),
  ``memories`` (left as memories), and the row's ``transistors`` (Yosys' estimate of the
  gates);
* ``harness_cells`` (the out-of-context wrapper's) and ``port_bits``;
* ``fmax_mhz``: ``seeds`` (seed -> MHz), ``median``, ``min``, ``max``, ``target``;
* ``critical_path`` of the median seed: ``from``, ``to``, ``delay_ns``, ``logic_ns``,
  ``routing_ns``, ``cells``, ``sources``;
* ``utilization``: nextpnr's used and available per resource, wrapper included;
* ``seconds``, and ``error`` when place and route failed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_markdown", "meets"]


def meets(row: dict[str, Any]) -> bool | None:
    """Whether a row's median fmax reaches its target (None: no fmax, e.g. ``generic``)."""
    f = row.get("fmax_mhz")
    return None if f is None else f["median"] >= f["target"]


def _fmax(row: dict[str, Any]) -> str:
    f = row.get("fmax_mhz")
    if f is None:
        return "failed" if "error" in row else "-"
    spread = f" ({f['min']:.1f}-{f['max']:.1f})" if len(f["seeds"]) > 1 else ""
    return f"{f['median']:.1f}{spread}"


def _path(row: dict[str, Any]) -> str:
    cp = row.get("critical_path")
    if not cp:
        return row.get("error", "")
    return (f"`{cp['from']}` -> `{cp['to']}`: {cp['delay_ns']:.2f} ns, {cp['cells']} cells "
            f"({cp['routing_ns'] / cp['delay_ns']:.0%} routing)")


def render_markdown(report: dict[str, Any]) -> str:
    rows = report["blocks"]
    tools = ", ".join(f"{k} {v}" for k, v in report["tools"].items())
    lines = [f"# Synthesis of {report['config']}", "", f"Target {report['target']}, tools {tools}."]
    pnr = [r for r in rows if r["target"] != "generic"]
    if pnr:
        lines += [
            f"fmax in MHz: the median over seeds {', '.join(map(str, report['seeds']))} "
            f"(min-max), placed and routed for {report['freq_mhz']:g} MHz inside the "
            "out-of-context wrapper (`cimforge.synth.harness`); cells are the block's own "
            "(the wrapper's apart).", "",
            "| block | device | LUT4 | carry | mux | FF | BRAM | DSP | fmax MHz | met | "
            "critical path |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|:-:|---|"]
        for r in pnr:
            c = r["cells"]
            met = {True: "yes", False: "no", None: "-"}[meets(r)]
            lines.append(f"| {r['block']} | {r['device']} | {c['lut4']:,} | {c['carry']:,} | "
                         f"{c.get('mux', 0):,} | {c['ff']:,} | {c['bram']} | {c['dsp']} | "
                         f"{_fmax(r)} | {met} | {_path(r)} |")
    gen = [r for r in rows if r["target"] == "generic"]
    if gen:
        lines += ["", "Technology-independent gates (Yosys `synth`, `abc -g cmos2`, "
                  "`stat -tech cmos`):", "",
                  "| block | cells | FF | NAND2 eq. | memories | transistors (Yosys, gates "
                  "only) |", "|---|---:|---:|---:|---:|---:|"]
        for r in gen:
            c = r["cells"]
            lines.append(f"| {r['block']} | {c['cells']:,} | {c['ff']:,} | "
                         f"{c['nand2_eq']:,.0f} | {c['memories']} | {r['transistors']:,} |")
    return "\n".join(lines) + "\n"
