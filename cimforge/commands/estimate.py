"""``cimforge estimate``: latency, throughput, energy and area of a model on an accelerator
config, by component, with the programming cost, the memories' wear and a GPU comparison
(``golden/estimate.py``; the model and its sources in docs/ppa.md)."""

from __future__ import annotations

import json
from pathlib import Path

from cimforge.commands.generate import add_config_argument
from cimforge.commands.paths import check_out_file, path_arg
from cimforge.config import KNOWN_MODELS, load_config
from cimforge.errors import CliError

__all__ = ["add_parser", "run"]

MODELS = ("minilm", "bert-base", "bert-large", "gpt2")


def add_parser(sub):
    p = sub.add_parser(
        "estimate", help="latency, energy, area and wear of a model on a config",
        description="Latency per inference (an encoder's sequence, or one generated token "
        "of a decoder with --seq tokens of context) from the accelerator's cycle model, "
        "energy and area by component from the analytic cost model (docs/ppa.md), weight "
        "programming time and energy, writes per inference into each memory and their "
        "lifetime, and a comparison with a GPU where a baseline is known. --validate "
        "compares the cost model with published chips instead.",
    )
    add_config_argument(p)
    p.set_defaults(config="minilm")
    p.add_argument("--model", choices=MODELS, default=None,
                   help="the model to run on the config's hardware (default: the config's "
                   "own model)")
    p.add_argument("--seq", type=int, default=None,
                   help="tokens of the sequence, or a decoder's context (default: the "
                   "config's model.seq_len)")
    p.add_argument("--validate", action="store_true",
                   help="the cost model against IBM's 64-core PCM chip, ISAAC and NeuRRAM")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--plot", type=path_arg, default=None, metavar="FILE.png",
                   help="write the energy and area breakdowns as a PNG")
    return p


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= scale:
            return f"{value / scale:,.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def run(args) -> int:
    from cimforge.golden.mapping import MappingError

    if args.plot is not None:
        check_out_file(args.plot, "--plot", suffix=".png")
    if args.validate:
        return _validate(args)
    cfg = load_config(args.config)
    seq = args.seq if args.seq is not None else cfg.model.seq_len
    model = KNOWN_MODELS[args.model] if args.model else cfg.model
    if not 1 <= seq <= model.max_seq:
        raise CliError(f"--seq must be in [1, {model.max_seq}] for {model.name}, not {seq}")
    from cimforge.golden.estimate import estimate

    try:
        est = estimate(cfg, args.model, seq)
    except (MappingError, ValueError) as e:
        raise CliError(str(e)) from None
    if args.plot is not None:
        _plot(est, cfg.name, args.plot)
    if args.json:
        print(json.dumps(est.as_dict(), indent=1))
        return 0
    _print(est, cfg)
    if args.plot is not None:
        print(f"plot: {args.plot}")
    return 0


def _plot(est, config: str, path: Path) -> None:
    """Two horizontal bar charts: energy an inference and area, by component."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cimforge.commands.sweep import figure_png
    from cimforge.files import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=120)
    for ax, (title, parts, unit, scale) in zip(axes, (
            ("energy an inference", est.energy_j, "uJ", 1e6),
            ("area", est.area_m2, "mm$^2$", 1e6))):
        items = sorted(parts.items(), key=lambda kv: kv[1])
        total = sum(parts.values())
        ax.barh([k.split(" (")[0] for k, _ in items], [v * scale for _, v in items],
                color="C0")
        for i, (_, v) in enumerate(items):
            ax.text(v * scale, i, f" {v / total:.0%}", va="center", fontsize=7)
        ax.set_xlabel(unit)
        ax.set_title(f"{title}: {total * scale:,.0f} {unit}", fontsize=9)
        ax.tick_params(labelsize=7)
    what = (f"one token, {est.seq} of context" if est.kind == "decoder"
            else f"{est.seq} tokens")
    fig.suptitle(f"{est.model} on {config} ({what}, {est.node_nm:g} nm)", fontsize=10)
    png = figure_png(fig)
    with atomic_write(path, "wb") as f:
        f.write(png)


def _print(est, cfg) -> None:
    t, a = cfg.tile, cfg.adc
    what = ("per generated token, with " f"{est.seq} tokens of context" if est.kind == "decoder"
            else f"per inference of {est.seq} tokens")
    print(f"{est.model} on {cfg.name}: {t.rows}x{t.cols} {cfg.device.preset} tiles, "
          f"{a.bits}-bit {a.kind} ADCs ({a.cols_per_adc} columns each), "
          f"{est.node_nm:g} nm, {est.clock_mhz:g} MHz; {what}")
    print(f"  latency     {_si(est.latency_s, 's')} ({est.cycles:,} cycles); "
          f"{1 / est.latency_s:,.3g} {'tokens' if est.kind == 'decoder' else 'inferences'}/s")
    print(f"  compute     {est.macs:,} MACs: {est.tops:.3g} TOPS, {est.tops_per_w:.3g} TOPS/W")
    print(f"  energy      {_si(est.total_j, 'J')}")
    for name, e in sorted(est.energy_j.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<62} {_si(e, 'J'):>10} {e / est.total_j:>6.1%}")
    total_area = sum(est.area_m2.values())
    print(f"  area        {total_area * 1e6:,.3g} mm^2")
    for name, ar in sorted(est.area_m2.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<62} {ar * 1e6:>8,.3g} mm^2 {ar / total_area:>6.1%}")
    p = est.programming
    print(f"  programming {p['cells']:,} cells in {_si(p['time_s'], 's')}, "
          f"{_si(p['energy_j'], 'J')}; the cells wear out after "
          f"{p['reprogrammings_to_wear_out']:,.3g} programmings")
    w = est.writes_bits
    print("  writes      " + ", ".join(f"{k} {v:,.0f} bits" for k, v in w.items())
          + " an inference")
    from cimforge.golden.endurance import duration

    print("  lifetime    " + ", ".join(f"{k}: {duration(s)}" for k, s in est.lifetime_s.items())
          + " (SRAM endurance, the most-written cell, inferences back to back)")
    if est.gpu:
        for b in est.gpu["baselines"]:
            print(f"  vs GPU      batch {b['batch']}: {_si(b['latency_s'], 's')} a batch, "
                  f"{_si(b['energy_j'], 'J')} an inference -> speed-up "
                  f"{b['speedup']:.3g}x, energy efficiency {b['efficiency']:.3g}x "
                  f"({est.gpu['name']})")
    else:
        print("  vs GPU      no baseline for this model and length (docs/ppa.md lists them)")


def _validate(args) -> int:
    from cimforge.golden.validation import validate

    rows = validate()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'chip':<26} {'figure':<46} {'model':>10} {'published':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['chip']:<26} {r['figure']:<46} {r['model']:>10.3g} {r['published']:>10.3g} "
              f"{r['model'] / r['published']:>6.2f}")
    return 0
