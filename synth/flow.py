"""Synthesis, place and route of one block: cells, fmax over seeds, the critical path.

Targets:

* ``ecp5``: Yosys ``synth_ecp5`` then nextpnr-ecp5 on a Lattice ECP5 (LFE5U-25F for a block,
  LFE5U-85F for the accelerator top, speed grade 6, the slowest), the block inside the
  out-of-context wrapper of :mod:`cimforge.synth.harness`, at ``freq`` MHz with
  ``--timing-allow-fail`` so that a miss is measured, not an error;
* ``ice40``: ``synth_ice40`` then nextpnr-ice40 on an iCE40 HX8K;
* ``generic``: technology-independent ``synth`` then ``abc -g cmos2`` (NAND, NOR, NOT and
  flip-flops) and ``stat -tech cmos``: cell counts and Yosys' transistor estimate, the ASIC view
  (memories are left as memories, not counted: a chip holds them in SRAM). No place and
  route, no fmax.

Every step is cached by content under ``cache_root/<target>/<block>-<key>/``: the key hashes
the Verilog, the wrapper, the Yosys script and the tools' versions, and each place-and-route
run is keyed by its own arguments and seed too. A cached run is read back, not redone.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cimforge.files import locked, write_text_atomic
from cimforge.synth.harness import HARNESS_TOP, harness_verilog, top_ports
from cimforge.synth.tools import ToolError, run_tool, tool_versions

__all__ = ["TARGETS", "Target", "synth_block", "critical_path", "signal_of"]


@dataclass(frozen=True)
class Target:
    name: str
    yosys: Callable[[str, str], str]  # (block top, Verilog file) -> Yosys script
    pnr: str | None  # the nextpnr tool, None: synthesis only
    devices: dict[str, tuple[str, ...]]  # device name -> nextpnr arguments
    default_device: str
    top_device: str  # the accelerator top's device
    describe: dict[str, str]
    reset_buffer: str | None = None  # a global buffer instance ({i} -> {o}), for the top's reset


def _ecp5_script(top: str, file: str) -> str:
    return (f"read_verilog {file} harness.v; setattr -mod -set keep_hierarchy 1 {top}; "
            f"synth_ecp5 -top {HARNESS_TOP} -json synth.json; "
            "tee -q -o stat.json stat -json")


def _ice40_script(top: str, file: str) -> str:
    return (f"read_verilog {file} harness.v; setattr -mod -set keep_hierarchy 1 {top}; "
            f"synth_ice40 -top {HARNESS_TOP} -json synth.json; "
            "tee -q -o stat.json stat -json")


def _generic_script(top: str, file: str) -> str:
    # memories stay $mem cells (not counted as gates: a chip holds them in SRAM macros)
    return (f"read_verilog {file}; synth -top {top} -flatten -run :fine; opt -full; techmap; "
            "opt -fast; abc -g cmos2; opt_clean; tee -q -o stat.json stat -json -tech cmos")


TARGETS = {
    "ecp5": Target(
        "ecp5", _ecp5_script, "nextpnr-ecp5",
        {"25k": ("--25k", "--package", "CABGA256", "--speed", "6"),
         "45k": ("--45k", "--package", "CABGA256", "--speed", "6"),
         "85k": ("--85k", "--package", "CABGA381", "--speed", "6")},
        "25k", "85k",
        {"25k": "LFE5U-25F-6BG256", "45k": "LFE5U-45F-6BG256", "85k": "LFE5U-85F-6BG381"},
        "DCCA rst_buf (.CLKI({i}), .CE(1'b1), .CLKO({o}));"),
    "ice40": Target(
        "ice40", _ice40_script, "nextpnr-ice40",
        {"hx8k": ("--hx8k", "--package", "ct256"), "up5k": ("--up5k", "--package", "sg48")},
        "hx8k", "hx8k", {"hx8k": "iCE40HX8K-CT256", "up5k": "iCE40UP5K-SG48"},
        "SB_GB rst_buf (.USER_SIGNAL_TO_GLOBAL_BUFFER({i}), .GLOBAL_BUFFER_OUTPUT({o}));"),
    "generic": Target("generic", _generic_script, None, {"cmos": ()}, "cmos", "cmos",
                      {"cmos": "technology-independent gates (Yosys abc -g cmos2)"}),
}

# Yosys cell types -> report columns, per target
_CELLS = {
    "ecp5": {"lut4": ("LUT4",), "carry": ("CCU2C",), "mux": ("PFUMX", "L6MUX21"),
             "ff": ("TRELLIS_FF",), "bram": ("DP16KD",), "dsp": ("MULT18X18D", "ALU54B"),
             "lutram": ("TRELLIS_DPR16X4",)},
    "ice40": {"lut4": ("SB_LUT4",), "carry": ("SB_CARRY",),
              "ff": tuple(f"SB_DFF{s}" for s in ("", "E", "SR", "R", "SS", "S", "ESR", "ER",
                                                   "ESS", "ES")),
              "bram": ("SB_RAM40_4K",), "dsp": ("SB_MAC16",)},
}


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


_FF_SUFFIX = re.compile(r"_(TRELLIS_FF|SB_DFF\w*)_Q(_\d+)?$")
_COMB_SUFFIX = re.compile(r"\$CCU2_COMB\d$")


def signal_of(cell: str) -> str:
    """The RTL signal a placed cell comes from: nextpnr names a flip-flop after the signal it
    drives (``dut.rq_s1_shift_TRELLIS_FF_Q_3`` -> ``rq_s1_shift``), inside ``dut.``; an
    escaped name loses its backslash (``dut.\\$like_TRELLIS_FF_Q_15`` -> ``$like``)."""
    name = cell.removeprefix("dut.").removeprefix("\\")
    return _FF_SUFFIX.sub("", _COMB_SUFFIX.sub("", name)) or name


def critical_path(report: dict[str, Any]) -> dict[str, Any] | None:
    """The clock-to-clock critical path of a nextpnr ``--report``: start and end signals,
    delay split into logic and routing, the logic cells it crosses (LUTs, and each carry
    cell of an adder's chain), and the RTL lines it runs through."""
    paths = [p for p in report.get("critical_paths", [])
             if p.get("from", "").startswith("posedge") and p.get("to", "").startswith("posedge")]
    if not paths:
        return None
    segs = paths[0]["path"]
    logic = sum(s["delay"] for s in segs if s["type"] in ("clk-to-q", "logic", "setup"))
    routing = sum(s["delay"] for s in segs if s["type"] == "routing")
    sources: list[str] = []
    for s in segs:
        for src in s.get("sources", []):
            src = src.split(":")[0] + ":" + src.split(":")[1].split(".")[0]  # file:line
            if src not in sources and not src.startswith("harness.v"):
                sources.append(src)
    return {"from": signal_of(segs[0]["from"]["cell"]), "to": signal_of(segs[-1]["to"]["cell"]),
            "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3),
            "routing_ns": round(routing, 3),
            "cells": sum(1 for s in segs if s["type"] == "logic"), "sources": sources[:8]}


def _cells(target: str, stat: dict[str, Any], module: str) -> dict[str, int]:
    by_type = stat["modules"][f"\\{module}"]["num_cells_by_type"]
    if target == "generic":
        gates = {t: n for t, n in by_type.items() if not t.startswith("$mem")}
        ff = sum(n for t, n in gates.items() if "DFF" in t)
        # NAND2 equivalents: NAND and NOR 1, NOT 1/2 (2 transistors of 4), a flip-flop 6
        nand2 = (gates.get("$_NAND_", 0) + gates.get("$_NOR_", 0)
                 + gates.get("$_NOT_", 0) / 2 + 6 * ff)
        return {"cells": sum(gates.values()), "ff": ff, "nand2_eq": round(nand2, 1),
                "memories": sum(n for t, n in by_type.items() if t.startswith("$mem"))}
    cols = {col: sum(by_type.get(t, 0) for t in types)
            for col, types in _CELLS[target].items()}
    known = {t for types in _CELLS[target].values() for t in types}
    cols["other"] = sum(n for t, n in by_type.items() if t not in known and t != module)
    return cols


def synth_block(name: str, verilog: str, *, target: str = "ecp5", device: str | None = None,
                seeds: tuple[int, ...] = (1, 2, 3), freq_mhz: float = 100.0,
                cache_root: Path, jobs: int = 2, timeout: float | None = None,
                fold_outputs: bool = False, pnr_options: tuple[str, ...] = (),
                global_reset: bool = False,
                progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Synthesize (and place and route over ``seeds``) block ``name`` whose Verilog text is
    ``verilog``; returns its report row (see :mod:`cimforge.synth.report`). ``fold_outputs``:
    the wrapper folds the outputs into an XOR chain (:mod:`cimforge.synth.harness`).
    ``pnr_options``: more nextpnr arguments (``--placer``, ``--router``). ``global_reset``: the
    wrapper drives the block's reset through the target's global buffer."""
    tgt = TARGETS[target]
    device = device or tgt.default_device
    if device not in tgt.devices:
        raise ValueError(f"device {device!r} is not one of {target}'s: {sorted(tgt.devices)}")
    tools = ("yosys",) + ((tgt.pnr,) if tgt.pnr else ())
    versions = tool_versions(tools)
    harness = (harness_verilog(verilog, name, fold_outputs,
                               tgt.reset_buffer if global_reset else None)
               if tgt.pnr else "")
    script = tgt.yosys(name, f"{name}.v")
    skey = _key(target, verilog, harness, script, versions["yosys"])
    work = cache_root / target / f"{name}-{skey}"
    work.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"block": name, "target": target, "device": tgt.describe[device],
                           "seconds": {}}
    with locked(work.with_suffix(".lock")):
        stamp = work / "synth.done"
        if not stamp.exists():
            write_text_atomic(work / f"{name}.v", verilog)
            if harness:
                write_text_atomic(work / "harness.v", harness)
            progress(f"[synth] {name}: yosys ({target}) ...")
            seconds = run_tool("yosys", ["-q", "-p", script], work, "yosys.log",
                               timeout=timeout)
            write_text_atomic(stamp, json.dumps({"seconds": seconds}))
        row["seconds"]["yosys"] = json.loads(stamp.read_text())["seconds"]
    stat = json.loads((work / "stat.json").read_text())
    row["cells"] = _cells(target, stat, name)
    if target == "generic":
        row["transistors"] = int(str(stat["modules"][f"\\{name}"]
                                     .get("estimated_num_transistors", "0")).rstrip("+"))
        return row
    row["harness_cells"] = _cells(target, stat, HARNESS_TOP)
    ports = top_ports(verilog, name)
    row["port_bits"] = {d: sum(p.width for p in ports if p.direction == d
                               and p.name not in ("clk", "rst")) for d in ("input", "output")}

    def place(seed: int) -> dict[str, Any]:
        args = [*tgt.devices[device], "--json", "synth.json", "--freq", f"{freq_mhz:g}",
                "--seed", str(seed), "--timing-allow-fail",
                *pnr_options]
        pkey = _key(skey, " ".join(args), versions[tgt.pnr])
        out = work / f"pnr-{pkey}.json"
        with locked(work / f"pnr-{pkey}.lock"):
            if not out.exists():
                progress(f"[pnr]   {name}: {tgt.pnr} seed {seed} ...")
                try:
                    seconds = run_tool(tgt.pnr, [*args, "--report", f"report-{pkey}.json"],
                                       work, f"pnr-{pkey}.log", timeout=timeout)
                except ToolError as e:
                    return {"seed": seed, "error": _pnr_error(e)}
                report = json.loads((work / f"report-{pkey}.json").read_text())
                write_text_atomic(out, json.dumps({"seconds": seconds, "report": report}))
        run = json.loads(out.read_text())
        fmax = list(run["report"]["fmax"].values())
        util = run["report"]["utilization"]
        return {"seed": seed, "seconds": run["seconds"],
                "fmax_mhz": min(f["achieved"] for f in fmax) if fmax else None,
                "critical_path": critical_path(run["report"]),
                "utilization": {k: [v["used"], v["available"]] for k, v in util.items()
                                if v["used"]}}

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(place, seeds))
    errors = [r for r in runs if "error" in r]
    row["seconds"]["pnr"] = [r.get("seconds") for r in runs]
    if errors:
        row["error"] = errors[0]["error"]
        return row
    fmax = [r["fmax_mhz"] for r in runs]
    row["fmax_mhz"] = {"seeds": {str(r["seed"]): round(r["fmax_mhz"], 2) for r in runs},
                       "median": round(statistics.median(fmax), 2),
                       "min": round(min(fmax), 2), "max": round(max(fmax), 2),
                       "target": freq_mhz}
    median_run = sorted(runs, key=lambda r: r["fmax_mhz"])[(len(runs) - 1) // 2]
    row["critical_path"] = median_run["critical_path"]
    row["utilization"] = median_run["utilization"]
    return row


def _pnr_error(e: ToolError) -> str:
    """The line of a failed place and route that says why (a design too big for the device,
    most often)."""
    for line in e.log.splitlines():
        if line.startswith("ERROR"):
            return line
    return str(e).splitlines()[0]
