"""``cimforge profile``: weights, MACs and KV cache of one inference (golden/workload.py)."""

from __future__ import annotations

import json

from cimforge.config import KNOWN_MODELS
from cimforge.errors import CliError

__all__ = ["add_parser", "run", "human"]


def add_parser(sub):
    p = sub.add_parser(
        "profile",
        help="count weights, MACs and KV cache of one inference",
        description="Workload of one inference of N tokens: linear-layer weights, static "
        "(FC) and dynamic (attention) MACs, their ratio, the int8 KV cache and non-linear ops.",
    )
    p.add_argument("--model", required=True, choices=tuple(KNOWN_MODELS), help="model shape")
    p.add_argument(
        "--seq",
        type=int,
        default=None,
        metavar="N",
        help="tokens per inference (default: the model's seq_len)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return p


_COUNT_PREFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
_SI_PREFIXES = ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k"))


def human(value: float, unit: str = "") -> str:
    """Three significant digits with a prefix: ``human(84934656) == "84.9M"``,
    ``human(10871635968, "MAC") == "10.9 GMAC"``, ``human(2359296, "B") == "2.36 MB"``.

    Without a unit the prefixes are k, M, B (billion), T, as parameter counts are quoted;
    with one they are SI (k, M, G, T)."""
    prefixes = _SI_PREFIXES if unit else _COUNT_PREFIXES
    for scale, prefix in prefixes:
        if abs(value) >= scale:
            v = value / scale
            digits = 2 if abs(v) < 10 else 1 if abs(v) < 100 else 0
            return f"{v:.{digits}f}{prefix}{unit}"
    return f"{value:g} {unit}" if unit else f"{value:g}"


def _table(p: dict) -> str:
    rows = [
        ("model", f"{p['model']} ({p['kind']})"),
        ("tokens (N)", str(p["seq_len"])),
        ("layers x d_model", f"{p['n_layers']} x {p['d_model']} ({p['n_heads']} heads)"),
        ("d_ff", str(p["d_ff"])),
        ("linear weights", human(p["weight_count"])),
        ("FC MACs (static)", human(p["fc_macs"], "MAC")),
        ("attention MACs (dynamic)", human(p["attention_macs"], "MAC")),
        ("total MACs", human(p["total_macs"], "MAC")),
        (
            "FC : attention",
            f"{100 * p['static_mvm_fraction']:.1f} : {100 * (1 - p['static_mvm_fraction']):.1f}",
        ),
        ("KV cache (int8)", human(p["kv_cache_bytes"], "B")),
        ("softmax exps", human(p["softmax_exps"])),
        ("GELU evaluations", human(p["gelu_evals"])),
        ("LayerNorm rows", human(p["layernorm_rows"])),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run(args) -> int:
    from cimforge.golden.workload import profile

    model = KNOWN_MODELS[args.model]
    seq = model.seq_len if args.seq is None else args.seq
    if not 1 <= seq <= model.max_seq:
        raise CliError(
            f"--seq {seq}: must be a positive integer <= {model.max_seq} (max_seq of {model.name})"
        )
    p = profile(model, seq)
    print(json.dumps(p) if args.json else _table(p))
    return 0
