"""Setup timing from a nextpnr SDF (``synth/sdf_timing.py``) on a hand-written netlist: two
register-to-register paths, one through two LUTs, and a constant driver."""

from cimforge.synth.sdf_timing import analyse, format_report, main, read_sdf

# ff_a -> lut1 -> lut2 -> ff_b (long); ff_a -> ff_c (short); a constant into lut2
SDF = r"""(DELAYFILE
  (SDFVERSION "3.0")
  (TIMESCALE 1ps)
  (CELL
    (CELLTYPE "top")
    (INSTANCE )
    (DELAY
      (ABSOLUTE
        (INTERCONNECT u.ff_a/Q u.lut1/A (800:800:800) (800:800:800))
        (INTERCONNECT u.lut1/F u.lut2/B (1500:1500:1500) (1500:1500:1500))
        (INTERCONNECT u.lut2/F v.ff_b/DI (300:300:300) (300:300:300))
        (INTERCONNECT u.ff_a/Q v.ff_c/DI (200:200:200) (200:200:200))
        (INTERCONNECT $PACKER_GND/F u.lut2/C (9000:9000:9000) (9000:9000:9000))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_FF")
    (INSTANCE u.ff_a)
    (DELAY
      (ABSOLUTE
        (IOPATH CLK Q (430:477:525) (430:477:525))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_COMB")
    (INSTANCE u.lut1)
    (DELAY
      (ABSOLUTE
        (IOPATH A F (200:218:236) (200:218:236))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_COMB")
    (INSTANCE u.lut2)
    (DELAY
      (ABSOLUTE
        (IOPATH B F (200:218:236) (200:218:236))
        (IOPATH C F (200:218:236) (200:218:236))
      )
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_FF")
    (INSTANCE v.ff_b)
    (DELAY
      (ABSOLUTE
        (IOPATH CLK Q (430:477:525) (430:477:525))
      )
    )
    (TIMINGCHECK
      (SETUPHOLD (posedge DI) (posedge CLK) (0:0:0) (267:285:303))
    )
  )
  (CELL
    (CELLTYPE "TRELLIS_FF")
    (INSTANCE v.ff_c)
    (TIMINGCHECK
      (SETUPHOLD (posedge DI) (posedge CLK) (0:0:0) (267:285:303))
    )
  )
)
"""


def test_paths_and_endpoints(tmp_path):
    (tmp_path / "d.sdf").write_text(SDF)
    r = analyse(read_sdf(tmp_path / "d.sdf"), period_ns=3.0)
    long = 525 + 800 + 236 + 1500 + 236 + 300 + 303  # clock-to-out, wires, LUTs, setup
    assert r.endpoints == [(long, "v.ff_b/DI"), (525 + 200 + 303, "v.ff_c/DI")]
    assert r.worst_ps == long and abs(r.fmax_mhz - 1e6 / long) < 1e-9
    assert r.failing() == [(long, "v.ff_b/DI")]  # 3.9 ns against 3 ns
    assert [p for p, _ in r.path("v.ff_b/DI")] == [
        "u.ff_a/Q", "u.lut1/A", "u.lut1/F", "u.lut2/B", "u.lut2/F", "v.ff_b/DI"]
    text = format_report(r, paths=5, depth=1)
    assert "failing at 3 ns: 1" in text and "      1    3.90  u" not in text
    assert "3.90  v" in text  # the failing endpoint grouped by its top-level instance
    assert "$PACKER_GND" not in text  # the constant's 9 ns wire is no path


def test_command_line(tmp_path, capsys):
    (tmp_path / "d.sdf").write_text(SDF)
    assert main([str(tmp_path / "d.sdf"), "--period", "10", "--paths", "1"]) == 0
    assert "worst 3.90 ns (256.4 MHz); failing at 10 ns: 0" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.sdf")]) == 2
    assert "missing.sdf: no such file" in capsys.readouterr().err
    assert main([str(tmp_path / "d.sdf"), "--period", "0"]) == 2
