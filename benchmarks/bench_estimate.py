"""Wall time of ``cimforge estimate`` for the large models (target: under 5 s each).

    python benchmarks/bench_estimate.py
"""

from __future__ import annotations

import subprocess
import sys
import time

CASES = [("bert-large", "128"), ("gpt2", "1024"), ("gpt2", "128"), ("bert-base", "128")]

for model, seq in CASES:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cimforge.cli", "estimate", "--config", "minilm",
                    "--model", model, "--seq", seq, "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"estimate {model:<10} seq {seq:>4}: {time.perf_counter() - start:.2f} s")
