"""``cimforge sweep``: MiniLM through the analog crossbar model over ADC bits x bits per cell x
rows per read x inference time x seeds: cosine similarity to float and the cost estimate per
point, to a CSV and two PNG plots.

Every point is ``cimforge embed --mode cim`` with the config's ``adc.bits``,
``tile.bits_per_cell``, ``tile.rows_per_read``, ``analog.t_inference`` and ``seed`` replaced
(seeds ``seed, seed + 1, ...``); the float embeddings of the same sentences are the
reference. Each hardware point also gets ``cimforge estimate``'s figures for MiniLM over the
config's ``model.seq_len`` tokens (energy, latency, area, TOPS/W). The CSV has one row per
point; ``OUTPUT.png`` shows, per hardware point, the mean cosine (over sentences, averaged
over seeds) against time after programming, and the worst sentence's as a dashed line;
``OUTPUT-pareto.png`` the energy per inference against the mean cosine at every time, the
points no other point beats in both marked as the Pareto front.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from cimforge.commands.paths import check_out_file, path_arg
from cimforge.config import KNOWN_MODELS, ConfigError, load_config
from cimforge.data import REFERENCE_SENTENCES, reference_sentences
from cimforge.errors import CliError
from cimforge.files import atomic_write, write_text_atomic

__all__ = ["add_parser", "run", "parse_list", "sweep_points", "hardware_points", "pareto_front",
           "DEFAULT_SENTENCES"]

DEFAULT_SENTENCES = REFERENCE_SENTENCES
# Bounds of one sweep: each point runs MiniLM once (about a second on the reference sentences)
MAX_SEEDS = 1000
MAX_POINTS = 10_000

CSV_HEADER = ("adc_bits,t_inference_s,seed,mean_cos,min_cos,seconds,bits_per_cell,"
              "rows_per_read,energy_j,latency_s,area_mm2,tops_per_w")


def add_parser(sub):
    p = sub.add_parser(
        "sweep",
        help="accuracy and cost of MiniLM on the analog model over ADC bits, bits per cell, "
        "rows per read, inference time and seeds",
        description="Run MiniLM with every linear layer through the analog crossbar model of "
        "--config for each ADC width, bits per cell, rows per read, inference time and seed; "
        "write the cosine similarity to float (mean and min over sentences) and the cost "
        "estimate of each hardware point (energy, latency, area, TOPS/W: cimforge estimate) "
        "to OUTPUT.csv, the accuracy over time to OUTPUT.png and the accuracy-energy Pareto "
        "front to OUTPUT-pareto.png.",
    )
    p.add_argument("--config", required=True, metavar="PRESET|FILE", help="hardware config")
    p.add_argument("--adc-bits", default="4,6,8", metavar="B,B,..",
                   help="ADC widths (default: 4,6,8)")
    p.add_argument("--bits-per-cell", default=None, metavar="B,B,..",
                   help="bits per cell (default: the config's)")
    p.add_argument("--rows-per-read", default=None, metavar="R,R,..",
                   help="rows activated per read (default: the config's)")
    p.add_argument("--t-inference", default="1,3600,86400,31536000", metavar="S,S,..",
                   help="seconds after programming (default: 1 s, 1 h, 1 day, 1 year)")
    p.add_argument("--seeds", default=3, type=int, metavar="N",
                   help="seeds per point: the config's seed and the next N-1 (default: 3)")
    p.add_argument("--input", type=path_arg, default=None,
                   help="UTF-8 text, one sentence per line (default: the 30 reference sentences)")
    p.add_argument("--output", type=path_arg, default=None, metavar="OUTPUT.csv",
                   help="CSV to write, the plot beside it as .png (default: sweep-<config>.csv)")
    p.add_argument("--batch-size", default=32, type=int, metavar="N",
                   help="sentences per pass (default: 32)")
    return p


def parse_list(flag: str, text: str, kind: type, allowed: str) -> list:
    """``"4,6,8"`` -> ``[4, 6, 8]``; a bad or empty item is a CliError naming ``flag``."""
    items = [s.strip() for s in text.split(",")]
    try:
        values = [kind(s) for s in items]
    except ValueError:
        raise CliError(f"{flag} {text!r}: must be a comma-separated list of {allowed}") from None
    if not values or any(s == "" for s in items):
        raise CliError(f"{flag} {text!r}: must be a comma-separated list of {allowed}")
    return values


def hardware_points(cfg, adc_bits: list[int], bits_per_cell: list[int],
                    rows_per_read: list[int]) -> list:
    """The config with every combination of ADC bits, bits per cell and rows per read, in
    that order. Raises CliError naming the flag when a value is one the config refuses."""
    points = []
    for bits in adc_bits:
        try:
            with_bits = dataclasses.replace(cfg, adc=dataclasses.replace(cfg.adc, bits=bits))
        except ConfigError as e:
            raise CliError(f"--adc-bits {bits}: {e}") from None
        for bpc in bits_per_cell:
            try:
                with_bpc = dataclasses.replace(
                    with_bits, tile=dataclasses.replace(with_bits.tile, bits_per_cell=bpc))
            except ConfigError as e:
                raise CliError(f"--bits-per-cell {bpc}: {e}") from None
            for rpr in rows_per_read:
                try:
                    points.append(dataclasses.replace(
                        with_bpc, tile=dataclasses.replace(with_bpc.tile, rows_per_read=rpr)))
                except ConfigError as e:
                    raise CliError(f"--rows-per-read {rpr}: {e}") from None
    return points


def sweep_points(cfg, adc_bits: list[int], times: list[float], seeds: int,
                 bits_per_cell: list[int] | None = None,
                 rows_per_read: list[int] | None = None) -> list:
    """Every point's config, in run order (the hardware points, then time, then seed).
    Raises CliError naming the flag when a value is one the config refuses."""
    points = []
    hw = hardware_points(cfg, adc_bits, bits_per_cell or [cfg.tile.bits_per_cell],
                         rows_per_read or [cfg.tile.rows_per_read])
    for with_bits in hw:
        for t in times:
            try:
                analog = dataclasses.replace(cfg.analog, t_inference=t)
            except ConfigError as e:
                raise CliError(f"--t-inference {t:g}: {e}") from None
            for i in range(seeds):
                points.append(dataclasses.replace(with_bits, analog=analog, seed=cfg.seed + i))
    return points


def _sentences(path: Path | None) -> list[str]:
    from cimforge.commands.embed import read_sentences

    if path is not None:
        return read_sentences(path)
    return reference_sentences()


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, total: int, width: int = 24):
        self.total, self.width = total, width
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def step(self, done: int, what: str) -> None:
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        fill = self.width * done // self.total
        bar = "#" * fill + "." * (self.width - fill)
        line = f"[{bar}] {done}/{self.total} {what} ({elapsed:.0f} s, {eta:.0f} s to go)"
        end = "" if self.tty and done < self.total else "\n"
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


def _plot(rows: list[tuple], config_name: str) -> bytes:
    """The PNG of the sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, (hw, mine) in enumerate(_by_hardware(rows).items()):
        times = sorted({r[1] for r in mine})
        mean = [np.mean([r[3] for r in mine if r[1] == t]) for t in times]
        worst = [np.mean([r[4] for r in mine if r[1] == t]) for t in times]
        color = f"C{i % 10}"
        name = _hw_label(hw)
        ax.plot(times, mean, "o-", color=color, label=f"{name}, mean")
        ax.plot(times, worst, "s--", color=color, alpha=0.7, label=f"{name}, min")
    return _log_x_png(fig, ax, "time after programming (s)", "cosine similarity to float",
                      f"MiniLM on {config_name}: mean over seeds")


def _log_x_png(fig, ax, xlabel: str, ylabel: str, title: str) -> bytes:
    """A sweep figure finished -- log x axis, labels, grid, legend -- as PNG bytes."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (laid out tight), the figure closed."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return png.getvalue()


def _by_hardware(rows: list[tuple]) -> dict[tuple, list[tuple]]:
    """Rows grouped by hardware point (ADC bits, bits per cell, rows per read)."""
    out: dict[tuple, list[tuple]] = {}
    for r in rows:
        out.setdefault((r[0], r[6], r[7]), []).append(r)
    return out


def _hw_label(hw: tuple) -> str:
    return f"{int(hw[0])}b ADC, {int(hw[1])}b/cell, {int(hw[2])} rows"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (energy, cosine) points no other point beats in both (lower energy and
    higher cosine, one of them strictly), by rising energy."""
    front = []
    for i, (e, c) in enumerate(points):
        beaten = any((e2 <= e and c2 >= c) and (e2 < e or c2 > c) for e2, c2 in points)
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _pareto_plot(rows: list[tuple], config_name: str) -> bytes:
    """The PNG of energy per inference against the mean cosine, the Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, labels = [], []
    for hw, mine in _by_hardware(rows).items():
        for t in sorted({r[1] for r in mine}):
            at = [r for r in mine if r[1] == t]
            pts.append((at[0][8], float(np.mean([r[3] for r in at]))))
            labels.append(f"{_hw_label(hw)}, t {t:g} s")
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="C0", alpha=0.6,
               label="sweep points")
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "o-", color="C3",
            label="Pareto front")
    for i in front:
        ax.annotate(labels[i], pts[i], fontsize=6, xytext=(4, -8), textcoords="offset points")
    return _log_x_png(fig, ax, "energy per inference (J, cimforge estimate)",
                      "mean cosine similarity to float",
                      f"MiniLM on {config_name}: accuracy against energy")


def run(args) -> int:
    # Everything the user can get wrong is checked before the first run.
    if args.batch_size < 1:
        raise CliError(f"--batch-size {args.batch_size}: must be a positive integer")
    if not 1 <= args.seeds <= MAX_SEEDS:
        raise CliError(f"--seeds {args.seeds}: must be an integer in [1, {MAX_SEEDS}]")
    adc_bits = parse_list("--adc-bits", args.adc_bits, int, "integers")
    times = parse_list("--t-inference", args.t_inference, float, "seconds (numbers > 0)")
    cfg = load_config(args.config)
    if cfg.model != KNOWN_MODELS["minilm"]:
        raise CliError(f"--config {args.config}: its [model] is {cfg.model.name!r}: the sweep "
                       "runs MiniLM, so use a config whose [model] name is 'minilm'")
    bpc = (parse_list("--bits-per-cell", args.bits_per_cell, int, "integers")
           if args.bits_per_cell else None)
    rpr = (parse_list("--rows-per-read", args.rows_per_read, int, "integers")
           if args.rows_per_read else None)
    n_points = (len(adc_bits) * len(bpc or [0]) * len(rpr or [0]) * len(times) * args.seeds)
    if n_points > MAX_POINTS:  # counted before any point is built
        raise CliError(f"{n_points:,} points (ADC widths x bits per cell x rows per read x "
                       f"times x seeds): at most {MAX_POINTS:,} per sweep, each runs MiniLM "
                       "once; shorten the lists or lower --seeds")
    points = sweep_points(cfg, adc_bits, times, args.seeds, bpc, rpr)
    output = args.output or Path(f"sweep-{cfg.name}.csv")
    if output.suffix != ".csv":
        raise CliError(f"--output {str(output)!r}: must end in .csv (the plot goes beside it)")
    inputs = (("--input", args.input),)
    check_out_file(output, "--output", inputs=inputs)
    check_out_file(output.with_suffix(".png"), "--output's plot", inputs=inputs)
    check_out_file(output.with_name(output.stem + "-pareto.png"), "--output's Pareto plot",
                   inputs=inputs)
    sentences = _sentences(args.input)
    from cimforge.golden.estimate import estimate
    from cimforge.golden.mapping import MappingError

    costs = {}
    for point in points:  # the estimate of each hardware point, before any model runs
        key = (point.adc.bits, point.tile.bits_per_cell, point.tile.rows_per_read)
        if key not in costs:
            try:
                costs[key] = estimate(point)
            except (MappingError, ValueError) as e:
                raise CliError(f"cannot estimate {_hw_label(key)}: {e}") from None

    from cimforge.commands.embed import load_model
    from cimforge.golden.float_model import l2_normalize
    from cimforge.golden.quant import CimLinear

    encoder = load_model("minilm")
    ref = encoder.embed(sentences, batch_size=args.batch_size)
    progress = _Progress(len(points))
    progress.step(0, "float reference done")
    rows = []
    for done, point in enumerate(points, 1):
        start = time.perf_counter()
        emb = encoder.with_linear(CimLinear(point)).embed(sentences, batch_size=args.batch_size)
        cos = (l2_normalize(emb) * ref).sum(axis=1)
        est = costs[point.adc.bits, point.tile.bits_per_cell, point.tile.rows_per_read]
        rows.append((point.adc.bits, point.analog.t_inference, point.seed, float(cos.mean()),
                     float(cos.min()), time.perf_counter() - start, point.tile.bits_per_cell,
                     point.tile.rows_per_read, est.total_j, est.latency_s,
                     sum(est.area_m2.values()) * 1e6, est.tops_per_w))
        progress.step(done, f"adc {point.adc.bits} bits, {point.tile.bits_per_cell} b/cell, "
                            f"{point.tile.rows_per_read} rows, t {point.analog.t_inference:g} s,"
                            f" seed {point.seed}: mean {cos.mean():.4f}")
    lines = [CSV_HEADER] + [f"{b},{t:g},{s},{m:.6f},{lo:.6f},{sec:.2f},{bpc},{rpr},{e:.6g},"
                            f"{lat:.6g},{area:.6g},{tw:.6g}"
                            for b, t, s, m, lo, sec, bpc, rpr, e, lat, area, tw in rows]
    png = _plot(rows, cfg.name)
    pareto = _pareto_plot(rows, cfg.name)
    pareto_path = output.with_name(output.stem + "-pareto.png")
    write_text_atomic(output, "\n".join(lines) + "\n")
    with atomic_write(output.with_suffix(".png"), "wb") as f:
        f.write(png)
    with atomic_write(pareto_path, "wb") as f:
        f.write(pareto)
    print(f"swept {len(points)} points of {cfg.name} over {len(sentences)} sentences -> "
          f"{output}, {output.with_suffix('.png')}, {pareto_path}", file=sys.stderr)
    return 0
