"""``cimforge latency``: a decoder's cycles per prefill token and per decode step, where a
step's cycles go, and how a step grows with the cache (``golden/accel_timing.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from cimforge.commands.generate import add_config_argument
from cimforge.commands.paths import check_out_file, path_arg
from cimforge.config import load_config
from cimforge.errors import CliError

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser(
        "latency", help="a decoder's cycles per prefill token and per decode step",
        description="From the accelerator's cycle model (the one the RTL is checked "
        "against): the prefill of a prompt (cycles, per token, each resource's busy share), "
        "then a decode step's cycles at every cache length up to --max-cache, their split "
        "(tile reads, digital-CIM, softmax, LayerNorm, the rest) and the step's lower bound. "
        "A --max-cache beyond the config's KV capacity models the same hardware with taller "
        "K and V macros.",
    )
    add_config_argument(p)
    p.set_defaults(config="tiny-decoder")
    p.add_argument("--prompt", type=int, default=None,
                   help="prefill tokens (default: half of model.seq_len)")
    p.add_argument("--max-cache", type=int, default=None,
                   help="longest cache of the decode table (default: the KV capacity)")
    p.add_argument("--plot", type=path_arg, default=None, metavar="FILE.png",
                   help="write the decode curve as a PNG")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p


def run(args) -> int:
    from cimforge.golden.accel_timing import AcceleratorTiming
    from cimforge.golden.mapping import MappingError

    if args.plot is not None:
        check_out_file(args.plot, "--plot", suffix=".png")
    cfg = load_config(args.config)
    if cfg.model.kind != "decoder":
        raise CliError(f"--config {args.config} is an {cfg.model.kind} model: latency needs "
                       "model.kind = 'decoder' (an encoder's sequences are in cimforge flow)")
    capacity = cfg.dcim.rows
    top = capacity if args.max_cache is None else args.max_cache
    if not 1 <= top <= 4096:
        raise CliError(f"--max-cache must be in [1, 4096], not {top}")
    prompt = max(1, cfg.model.seq_len // 2) if args.prompt is None else args.prompt
    if not 1 <= prompt <= capacity:
        raise CliError(f"--prompt must be in [1, {capacity}] (the KV capacity), not {prompt}")
    try:
        tm = AcceleratorTiming(cfg)
        # the same hardware with macros tall enough for the longest cache
        tall = tm if top <= capacity else AcceleratorTiming(cfg.with_sections(
            dcim={"rows": top}, model={"max_seq": max(top, cfg.model.max_seq)}))
    except (MappingError, ValueError) as e:
        raise CliError(str(e)) from None
    pre = tm.schedule(prompt)
    pre_bounds = tm.bounds(prompt)
    steps = []
    for base in range(top):
        model = tm if base < capacity else tall
        steps.append({"cached": base, "cycles": model.schedule(1, base=base).latency,
                      "bound": model.bounds(1, base).bound, "split": model.step_split(base)})
    report = {"config": cfg.name, "kv_capacity": capacity,
              "clock_mhz": cfg.accelerator.clock_mhz,
              "prefill": {"tokens": prompt, "cycles": pre.latency,
                          "cycles_per_token": pre.latency / prompt, "bound": pre_bounds.bound,
                          "busy_share": {k: w / pre.latency
                                         for k, w in pre_bounds.work.items()}},
              "decode": steps}
    if args.plot is not None:
        _plot(steps, capacity, cfg.name, args.plot)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{cfg.name} (KV capacity {capacity}): prefill of {prompt} tokens "
          f"{pre.latency:,} cycles, {pre.latency / prompt:,.0f} a token "
          f"(bound {pre_bounds.bound:,}: {pre.latency / pre_bounds.bound:.2f}x)")
    names = list(steps[0]["split"])
    print(f"{'cached':>6} {'step':>7} {'bound':>7} {'ratio':>6} "
          + " ".join(f"{n:>11}" for n in names))
    shown = sorted({0, top - 1, *(c for c in range(top) if c & (c - 1) == 0),
                    *(c for c in (capacity - 1, capacity) if c < top)})
    for c in shown:
        st = steps[c]
        print(f"{c:>6} {st['cycles']:>7,} {st['bound']:>7,} {st['cycles'] / st['bound']:>6.3f} "
              + " ".join(f"{st['split'][n]:>11,}" for n in names))
    if top > capacity:
        print(f"(beyond {capacity - 1} cached tokens: the same hardware with taller macros)")
    if args.plot is not None:
        print(f"plot: {args.plot}")
    return 0


def _plot(steps: list[dict], capacity: int, name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [s["cached"] for s in steps]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(x, [s["cycles"] for s in steps], label="decode step (cycle model)")
    ax.plot(x, [s["bound"] for s in steps], "--", label="lower bound")
    ax.set_ylim(bottom=0)
    ax.axvline(capacity - 0.5, color="grey", lw=0.8, ls=":")
    ax.text(capacity - 0.5, ax.get_ylim()[0], " KV capacity", color="grey", va="bottom")
    ax.set_xlabel("tokens in the K and V cache")
    ax.set_ylabel("cycles")
    ax.set_title(f"{name}: one decode step against the cache length")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
