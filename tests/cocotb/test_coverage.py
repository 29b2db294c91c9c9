"""Code coverage of a bench run (cimforge.verif.coverage): Verilator's counts read and merged,
the excluded points really unreachable, the annotated source, the suite's report."""

import json

from cimforge.verif.coverage import (
    KINDS,
    collect,
    constant_bits,
    merge,
    read_points,
    summarise,
)
from cimforge.verif.runner import run_bench
from cimforge.verif.simulators import find_verilator


def test_requant_coverage(tiny_manifest, cache_root, tmp_path):
    sim = find_verilator()
    one = tmp_path / "one"
    run_bench(tiny_manifest, "requant", sim, work_dir=one, cache_root=cache_root,
              testcase="corners", coverage=True)
    every = tmp_path / "every"
    run_bench(tiny_manifest, "requant", sim, work_dir=every, cache_root=cache_root,
              coverage=True)
    a, b = read_points(one / "coverage.dat"), read_points(every / "coverage.dat")
    assert a.keys() == b.keys() and {p.kind for p in a} == set(KINDS)
    merged = merge([one / "coverage.dat", b])
    assert all(merged[p] == a[p] + b[p] for p in a)

    manifest = json.loads(tiny_manifest.read_text())
    entry = manifest["blocks"]["requant"]
    verilog = [tiny_manifest.parent / entry["file"]]
    constants = constant_bits(verilog, entry["top"])
    cov_one = summarise(a, verilog, constants)
    cov = summarise(merged, verilog, constants)
    # the corner cases alone toggle fewer bits than every test: coverage measures the stimulus
    assert cov_one.covered["toggle"] < cov.covered["toggle"]
    assert cov.total == cov_one.total and all(cov.total[k] > 0 for k in KINDS)
    # what is excluded is unreachable: a constant bit never toggles, the back end's trigger
    # arm is never taken; and this block has some of each
    constant = cov.excluded["toggle"]["constant"]
    trigger = cov.excluded["branch"]["backend_trigger"]
    assert constant and trigger
    assert all(merged[p] == 0 for p in constant)
    assert all(merged[p] == 0 for p in trigger if p.comment == "if")
    assert {p.comment for p in trigger} == {"if", "else"}
    kinds = {k: sum(p.kind == k for p in merged) for k in KINDS}
    assert all(cov.total[k] + sum(map(len, cov.excluded.get(k, {}).values())) == kinds[k]
               for k in KINDS)

    # the suite's report (CIMFORGE_COVERAGE=1): both runs merged, sources annotated
    rows = collect([one, every], tmp_path / "report")
    assert len(rows) == 1 and rows[0]["block"] == "requant" and rows[0]["runs"] == 2
    assert rows[0]["coverage"]["toggle"] == {"covered": cov.covered["toggle"],
                                             "total": cov.total["toggle"]}
    annotated = (tmp_path / "report" / tiny_manifest.parent.name / "requant"
                 / entry["file"]).read_text().splitlines()
    source = verilog[0].read_text().splitlines()
    marks = [ln for ln in annotated if ln.startswith("%000000")]
    notes = [ln for ln in annotated if ln.lstrip().startswith("// ^ not hit:")]
    assert len(annotated) == len(source) + len(notes) and len(marks) == len(notes)
    assert len(marks) == len({p.line for k in KINDS for p in cov.uncovered[k]})
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| requant | 2 |" in report and "constant" in report
