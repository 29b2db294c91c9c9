"""``cimforge decode``: the integer and accelerator decoders against the float decoder on the
same seeded weights (``golden/int_decoder.py``)."""

from __future__ import annotations

import json

import numpy as np

from cimforge.commands.generate import add_config_argument
from cimforge.config import load_config
from cimforge.errors import CliError

__all__ = ["add_parser", "run", "MODES"]

MODES = ("int", "accel")


def add_parser(sub):
    p = sub.add_parser(
        "decode", help="compare the integer and accelerator decoders with the float decoder",
        description="Draw seeded prompts, generate greedily with the float decoder of the "
        "config's seeded weights, run the same tokens through the integer-only (int) and the "
        "accelerator (accel) decoder -- a prefill of the prompt, then one token a step -- and "
        "report the cosine of every decode step's hidden state to the float one and how often "
        "the next token (arg-max of a seeded vocabulary head) agrees.",
    )
    add_config_argument(p)
    p.set_defaults(config="tiny-decoder")
    p.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES),
                   help="decoders to compare (default: both)")
    p.add_argument("--prompt", type=int, default=4, help="prompt tokens (default 4)")
    p.add_argument("--steps", type=int, default=None,
                   help="decode steps per sequence (default: until the cache is full)")
    p.add_argument("--sequences", type=int, default=8, help="prompts (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts (default 0)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p


def run(args) -> int:
    from cimforge.golden.accelerator import AcceleratorDecoder
    from cimforge.golden.int_decoder import IntOnlyDecoder, agreement, calibrated, vocab_head
    from cimforge.golden.mapping import MappingError

    cfg = load_config(args.config)
    if cfg.model.kind != "decoder":
        raise CliError(f"--config {args.config} is an {cfg.model.kind} model: decode needs "
                       "model.kind = 'decoder'")
    for name in ("prompt", "sequences"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name} must be at least 1, not {getattr(args, name)}")
    decoder, ranges = calibrated(cfg)
    head = vocab_head(cfg)
    try:
        models = {m: (IntOnlyDecoder if m == "int" else AcceleratorDecoder)(decoder, cfg, ranges)
                  for m in dict.fromkeys(args.mode)}
    except MappingError as e:
        raise CliError(str(e)) from None
    capacity = min(m.capacity for m in models.values())
    steps = capacity - args.prompt if args.steps is None else args.steps
    if steps < 1 or args.prompt + steps > capacity:
        raise CliError(f"--prompt {args.prompt} and {steps} decode steps need "
                       f"{args.prompt + steps} cache positions; the cache holds {capacity}: "
                       "prompt + steps must be at most that, with at least one step")
    rng = np.random.default_rng(args.seed)
    prompts = [rng.integers(0, cfg.model.vocab_size, args.prompt).tolist()
               for _ in range(args.sequences)]
    report = {"config": cfg.name, "prompt": args.prompt, "steps": steps,
              "sequences": args.sequences, "seed": args.seed, "modes": {}}
    for name, model in models.items():
        runs = [agreement(model, head, p, steps) for p in prompts]
        cos = np.concatenate([r.cosine for r in runs])
        same = np.concatenate([r.same_argmax for r in runs])
        report["modes"][name] = {"decode_steps": len(cos), "cosine_mean": float(cos.mean()),
                                 "cosine_min": float(cos.min()),
                                 "argmax_agreement": float(same.mean())}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{cfg.name}: {args.sequences} prompts of {args.prompt} tokens (seed {args.seed}), "
          f"{steps} decode steps each, against the float decoder")
    print(f"{'mode':6} {'steps':>6} {'cosine mean':>12} {'cosine min':>11} {'same next token':>16}")
    for name, r in report["modes"].items():
        print(f"{name:6} {r['decode_steps']:>6} {r['cosine_mean']:>12.5f} {r['cosine_min']:>11.5f}"
              f" {r['argmax_agreement']:>16.1%}")
    return 0
