"""``cimforge sweep``: MiniLM through the analog crossbar model over ADC bits x inference time
x seeds, cosine similarity to float per point, to a CSV and a PNG plot.

Every point is ``cimforge embed --mode cim`` with the config's ``adc.bits``,
``analog.t_inference`` and ``seed`` replaced (seeds ``seed, seed + 1, ...``); the float
embeddings of the same sentences are the reference. The CSV has one row per point; the plot
shows, per ADC width, the mean cosine (over sentences, averaged over seeds) against time after
programming, and the worst sentence's as a dashed line.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from cimforge.config import KNOWN_MODELS, ConfigError, load_config
from cimforge.data import REFERENCE_SENTENCES, reference_sentences
from cimforge.errors import CliError
from cimforge.files import atomic_write, write_text_atomic

__all__ = ["add_parser", "run", "parse_list", "sweep_points", "DEFAULT_SENTENCES"]

DEFAULT_SENTENCES = REFERENCE_SENTENCES

CSV_HEADER = "adc_bits,t_inference_s,seed,mean_cos,min_cos,seconds"


def add_parser(sub):
    p = sub.add_parser(
        "sweep",
        help="accuracy of MiniLM on the analog model over ADC bits x inference time x seeds",
        description="Run MiniLM with every linear layer through the analog crossbar model of "
        "--config for each ADC width, inference time and seed; write the cosine similarity "
        "to float (mean and min over sentences) to OUTPUT.csv and a plot to OUTPUT.png.",
    )
    p.add_argument("--config", required=True, metavar="PRESET|FILE", help="hardware config")
    p.add_argument("--adc-bits", default="4,6,8", metavar="B,B,..",
                   help="ADC widths (default: 4,6,8)")
    p.add_argument("--t-inference", default="1,3600,86400,31536000", metavar="S,S,..",
                   help="seconds after programming (default: 1 s, 1 h, 1 day, 1 year)")
    p.add_argument("--seeds", default=3, type=int, metavar="N",
                   help="seeds per point: the config's seed and the next N-1 (default: 3)")
    p.add_argument("--input", type=Path, default=None,
                   help="UTF-8 text, one sentence per line (default: the 30 reference sentences)")
    p.add_argument("--output", type=Path, default=None, metavar="OUTPUT.csv",
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


def sweep_points(cfg, adc_bits: list[int], times: list[float], seeds: int) -> list:
    """Every point's config, in run order (ADC bits, then time, then seed). Raises CliError
    naming the flag when a value is one the config refuses."""
    points = []
    for bits in adc_bits:
        try:
            adc = dataclasses.replace(cfg.adc, bits=bits)
            with_bits = dataclasses.replace(cfg, adc=adc)
        except ConfigError as e:
            raise CliError(f"--adc-bits {bits}: {e}") from None
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
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array([r[:5] for r in rows], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, bits in enumerate(sorted(set(data[:, 0]))):
        mine = data[data[:, 0] == bits]
        times = sorted(set(mine[:, 1]))
        mean = [mine[mine[:, 1] == t, 3].mean() for t in times]
        worst = [mine[mine[:, 1] == t, 4].mean() for t in times]
        color = f"C{i}"
        ax.plot(times, mean, "o-", color=color, label=f"{int(bits)}-bit ADC, mean")
        ax.plot(times, worst, "s--", color=color, alpha=0.7, label=f"{int(bits)}-bit ADC, min")
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("cosine similarity to float")
    ax.set_title(f"MiniLM on {config_name}: mean over seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return png.getvalue()


def run(args) -> int:
    # Everything the user can get wrong is checked before the first run.
    if args.batch_size < 1:
        raise CliError(f"--batch-size {args.batch_size}: must be a positive integer")
    if args.seeds < 1:
        raise CliError(f"--seeds {args.seeds}: must be a positive integer")
    adc_bits = parse_list("--adc-bits", args.adc_bits, int, "integers")
    times = parse_list("--t-inference", args.t_inference, float, "seconds (numbers > 0)")
    cfg = load_config(args.config)
    if cfg.model != KNOWN_MODELS["minilm"]:
        raise CliError(f"--config {args.config}: its [model] is {cfg.model.name!r}: the sweep "
                       "runs MiniLM, so use a config whose [model] name is 'minilm'")
    points = sweep_points(cfg, adc_bits, times, args.seeds)
    output = args.output or Path(f"sweep-{cfg.name}.csv")
    if output.suffix != ".csv":
        raise CliError(f"--output {str(output)!r}: must end in .csv (the plot goes beside it)")
    if not output.parent.is_dir():
        raise CliError(f"--output {str(output)!r}: directory {str(output.parent)!r} does not "
                       "exist: create it first")
    sentences = _sentences(args.input)

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
        rows.append((point.adc.bits, point.analog.t_inference, point.seed, float(cos.mean()),
                     float(cos.min()), time.perf_counter() - start))
        progress.step(done, f"adc {point.adc.bits} bits, t {point.analog.t_inference:g} s, "
                            f"seed {point.seed}: mean {cos.mean():.4f}")
    lines = [CSV_HEADER] + [f"{b},{t:g},{s},{m:.6f},{lo:.6f},{sec:.2f}"
                            for b, t, s, m, lo, sec in rows]
    png = _plot(rows, cfg.name)
    write_text_atomic(output, "\n".join(lines) + "\n")
    with atomic_write(output.with_suffix(".png"), "wb") as f:
        f.write(png)
    print(f"swept {len(points)} points of {cfg.name} over {len(sentences)} sentences -> "
          f"{output}, {output.with_suffix('.png')}", file=sys.stderr)
    return 0
