"""``cimforge`` command line: one sub-command per module in :mod:`cimforge.commands`.

Each command module has ``add_parser(subparsers)`` and ``run(args) -> int``. User errors
(:class:`~cimforge.errors.CliError`, :class:`~cimforge.config.ConfigError`) become one line on
stderr and exit status 2; a failing regression exits with status 1.

Ctrl-C (SIGINT) and SIGTERM stop a command with one line on stderr and status 130 or 143:
the signal is turned into ``KeyboardInterrupt`` so that every ``finally`` runs (atomic writes
delete their temporary file, synthesis tools are killed), and every process this one started
(simulators, tools) is sent SIGTERM. An interrupt raised inside a ``__del__`` (where Python
drops exceptions) is raised again just after; one that a library swallowed still ends the
run with the signal's status rather than 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Iterator

from cimforge.config import ConfigError
from cimforge.errors import CliError

__all__ = ["main", "build_parser"]

COMMANDS = ("generate", "map", "flow", "regress", "synth", "estimate", "embed", "decode",
            "latency", "endurance", "sweep", "profile")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="cimforge",
        description="Generate and verify compute-in-memory transformer accelerators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"cimforge.commands.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def _descendants(root: int | None = None) -> list[int]:
    """Process ids of the children, grandchildren, ... of ``root`` (default: this process)
    (Linux ``/proc``; empty where there is none)."""
    parent: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # pid (comm) state ppid ...: comm may hold spaces and parentheses
                    parent[int(entry)] = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], {os.getpid() if root is None else root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier}
        found += sorted(frontier)
    return found


@contextlib.contextmanager
def _interrupts() -> Iterator[list[int]]:
    """While a command runs: SIGINT and SIGTERM terminate its child processes (a simulator
    under ``make`` would outlive a killed ``make``) and raise ``KeyboardInterrupt``; the list
    yielded receives the signals seen."""
    seen: list[int] = []

    def handler(signum, frame):
        seen.append(signum)
        for pid in _descendants():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        raise KeyboardInterrupt

    def unraisable(info):
        # raised inside a __del__ (garbage collection), where Python prints and drops it:
        # raise it again 10 ms later, by then (most likely) back in ordinary code; a drop
        # again re-arms the timer
        if seen and isinstance(info.exc_value, KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_REAL, 0.01)
        else:
            saved_hook(info)

    def again(signum, frame):
        raise KeyboardInterrupt

    try:
        saved = {sig: signal.signal(sig, h) for sig, h in
                 ((signal.SIGINT, handler), (signal.SIGTERM, handler), (signal.SIGALRM, again))}
    except ValueError:  # not the main thread: leave signals alone
        yield seen
        return
    saved_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield seen
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.unraisablehook = saved_hook
        for sig, old in saved.items():
            signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _interrupts() as seen:
        try:
            status = args._run(args)
        except (CliError, ConfigError) as e:
            if not seen:  # (after a signal, what failed is the interrupted work)
                print(f"cimforge {args.command}: error: {e}", file=sys.stderr)
                return 2
            status = None
        except KeyboardInterrupt:
            status = None
            if not seen:
                seen.append(signal.SIGINT)
    if seen:  # raised, or swallowed by a library on the way
        # what was half-built is dropped: no warnings about it (Amaranth's UnusedElaboratable)
        warnings.simplefilter("ignore")
        name = signal.Signals(seen[0]).name
        print(f"cimforge {args.command}: interrupted ({name}); outputs are written whole or "
              "not at all", file=sys.stderr)
        return 128 + seen[0]
    return status


if __name__ == "__main__":
    sys.exit(main())
