"""Command line: ``python -m simnet run|validate|live SCENARIO``, ``sweep SWEEP``,
``plot DIR``, ``compare SIM_RUN LIVE_RUN``, ``reproduce PAPER``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simnet.errors import InputError, PluginError
from simnet.executors import WorkerLost
from simnet.sweeps import PointFailed

EXIT_INPUT_ERROR = 2
EXIT_INCOMPLETE = 3
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simnet",
        description=(
            "Discrete-event simulator of end-edge-cloud collaborative learning. "
            "Virtual time comes from a flow-level network model and FLOP counts; "
            "the same scenario and seed give identical results."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _scenario_command(commands, "validate", "check a scenario and its topology without running it")
    _add_live(commands)
    _add_sweep(commands)
    _add_plot_and_compare(commands)
    _add_reproduce(commands)
    return parser


def _scenario_command(
    commands: argparse._SubParsersAction, name: str, help_text: str
) -> argparse.ArgumentParser:
    """A command taking a scenario file, ``--seed`` and ``--set``."""
    cmd = commands.add_parser(name, help=help_text, description=help_text)
    cmd.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario YAML file")
    cmd.add_argument("--seed", type=int, help="override the scenario's seed")
    cmd.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. --set network.bandwidth_factor=0.5 (repeatable; "
        "list items by index: workload.transfers.0.bytes=1000; a class of links: "
        "'topology.links[edge-cloud].bandwidth_mbps=5')",
    )
    return cmd


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = _scenario_command(commands, "run", "simulate a scenario and write its run directory")
    run.add_argument("--out", type=Path, help="run directory (default: runs/NAME-YYYYmmdd-HHMMSS)")
    run.add_argument(
        "--force", action="store_true", help="replace the files of an existing run directory"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar, no summary table")
    run.add_argument("--no-figures", action="store_true", help="do not write figures/")


def _add_live(commands: argparse._SubParsersAction) -> None:
    live = _scenario_command(
        commands,
        "live",
        "run a scenario's actors for real: OS processes exchanging messages over ZeroMQ "
        "through emulated links, in wall-clock time (across machines: --hosts FILE --only "
        "NODES on each, then 'simnet live merge PART... --out DIR')",
    )
    live.add_argument("--out", type=Path, help="run directory (default: runs/NAME-live-…)")
    live.add_argument(
        "--processes", type=int, help="OS processes to spread the nodes over (default: cores)"
    )
    live.add_argument(
        "--shaping", choices=["app", "none"], default="app",
        help="app: messages cross every link of their route with its latency and a paced, "
        "fairly shared capacity (default); none: straight to the receiver",
    )  # fmt: skip
    live.add_argument(
        "--curve", action="store_true",
        help="authenticate nodes with CURVE key pairs (written to OUT/keys unless --keys)",
    )  # fmt: skip
    live.add_argument(
        "--keys", type=Path, help="folder of CURVE key pairs, one per node (with --curve)"
    )
    live.add_argument(
        "--hosts", type=Path,
        help="YAML file mapping node ids (and, with --only, 'control') to host:port",
    )  # fmt: skip
    live.add_argument(
        "--only", metavar="NODE[,NODE...]",
        help="run only these nodes here; the launchers of the other nodes (same scenario, "
        "--hosts and --keys) run elsewhere; OUT gets this launcher's part.json",
    )  # fmt: skip
    live.add_argument(
        "--time-limit", type=float, default=600.0, help="wall-clock seconds (default 600)"
    )
    live.add_argument("--quiet", action="store_true", help="no progress bar, no summary table")


def _merge_parser() -> argparse.ArgumentParser:
    """``simnet live merge PART... [--out DIR]``, parsed apart from ``live SCENARIO``."""
    text = "join the parts that the launchers of a live run across machines wrote"
    merge = argparse.ArgumentParser(prog="simnet live merge", description=text)
    merge.add_argument("parts", type=Path, nargs="+", metavar="PART", help="part directory")
    merge.add_argument("--out", type=Path, help="run directory (default: runs/NAME-live-…)")
    merge.add_argument("--quiet", action="store_true", help="no summary table")
    return merge


def _add_sweep(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a grid of scenario variants (resumable) and tabulate them",
        description="Run every point of a sweep file (base scenario, grid, zip, set), skip "
        "points already complete with the scenario they would run now, write results.csv "
        "and the sweep's figures. Exit status 3 if a point's run is incomplete; a point "
        "whose run raises stops the sweep, finished points kept (exit status 1).",
    )
    sweep.add_argument("sweep", type=Path, metavar="SWEEP", help="sweep YAML file")
    sweep.add_argument("--workers", type=int, default=None,
                       help="processes (default: as many as the cores hold at the most cores "
                       "a point takes, its execution.threads)")  # fmt: skip
    sweep.add_argument("--backend", choices=("pool", "ray"), default="pool",
                       help="run points in local processes or as Ray tasks")  # fmt: skip
    sweep.add_argument("--address", default=None,
                       help="Ray: address of a running cluster (default: a local Ray)")  # fmt: skip
    sweep.add_argument("--out", type=Path, help="sweep directory (default: runs/sweep-NAME)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")
    sweep.add_argument(
        "--force", action="store_true",
        help="run every point again, even complete ones, and clear stale figures/",
    )  # fmt: skip


def _add_reproduce(commands: argparse._SubParsersAction) -> None:
    from simnet.reproduce import PAPERS

    cmd = commands.add_parser(
        "reproduce",
        help="regenerate a paper's tables and figures, ours beside the paper's",
        description="Run a paper's evaluation as resumable sweeps and write its tables "
        "(ours beside the paper's numbers), figures, and report.md with the paper's claims "
        "decided on our numbers. Rerun the same command to resume.",
    )
    cmd.add_argument("paper", metavar="PAPER", help=f"one of {', '.join(sorted(PAPERS))} "
                     "(another name is a one-line error, exit status 2)")  # fmt: skip
    cmd.add_argument("--quick", action="store_true",
                     help="1 seed, few rounds: a first look, not the paper's setting")  # fmt: skip
    cmd.add_argument("--seeds", type=int, default=None,
                     help="seeds per point (default 5, 1 with --quick)")  # fmt: skip
    cmd.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    cmd.add_argument("--backend", choices=("pool", "ray"), default="pool",
                     help="run points in local processes or as Ray tasks")  # fmt: skip
    cmd.add_argument("--out", type=Path, help="directory (default: runs/reproduce-PAPER)")
    cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field of every run (repeatable)")  # fmt: skip
    cmd.add_argument("--quiet", action="store_true", help="no progress bars, no printed report")


def _add_plot_and_compare(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser(
        "plot",
        help="draw the figures of a run or sweep directory (PNG and PDF)",
        description="Write figures/ of a run directory or of a sweep directory.",
    )
    plot.add_argument("directory", type=Path, metavar="DIR", help="run or sweep directory")
    compare = commands.add_parser(
        "compare",
        help="compare a simulated run with a live run of the same scenario",
        description="Join the messages of two run directories, print transfer-time errors "
        "per size class and kind, round times and final metrics, and write compare.csv and "
        "compare.png.",
    )
    compare.add_argument("sim", type=Path, metavar="SIM_RUN", help="simulated run directory")
    compare.add_argument("live", type=Path, metavar="LIVE_RUN", help="live run directory")
    compare.add_argument("--out", type=Path, help="where compare.csv/.png go (default: LIVE_RUN)")


def _run(args: argparse.Namespace) -> int:
    from simnet.api import run

    result = run(
        args.scenario, args.overrides, args.seed, args.out, progress=not args.quiet,
        force=args.force, figures=not args.no_figures,
    )  # fmt: skip
    return _report(result.summary, result.run_dir, args.quiet)


def _report(summary: dict, out: Path, quiet: bool) -> int:
    """Print a run's summary table (unless ``quiet``); exit status 3 if incomplete."""
    from simnet.report.table import format_summary

    if not quiet:
        print(format_summary(summary, out))
    if not summary["complete"]:
        print(f"incomplete run: {summary['incomplete_reason']}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def _validate(args: argparse.Namespace) -> int:
    from simnet.api import load

    scenario = load(args.scenario, args.overrides, args.seed)
    topo = scenario.topology
    print(
        f"{args.scenario}: ok ({scenario.workload.kind} workload, "  # type: ignore[attr-defined]
        f"{len(topo.nodes)} nodes, {len(topo.links)} links)"
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from simnet.api import sweep

    result = sweep(args.sweep, args.workers, args.backend, args.out, progress=not args.quiet,
                   force=args.force, address=args.address)  # fmt: skip
    table = result.results
    failed = table[~table["complete"].astype(bool)]
    reasons = zip(failed["run"], failed["incomplete_reason"], strict=True)
    incomplete = f"{len(failed)} incomplete: " + "; ".join(f"{r}: {why}" for r, why in reasons)
    out = result.sweep_dir
    if not args.quiet:
        figures = len(result.figures)
        note = f" ({incomplete})" if len(failed) else ""
        print(f"{len(table)} runs in {out}{note}; table {out / 'results.csv'}; "
              f"{figures} figures")  # fmt: skip
    elif len(failed):
        print(f"{out}: {incomplete}", file=sys.stderr)
    return EXIT_INCOMPLETE if len(failed) else 0


def _plot(args: argparse.Namespace) -> int:
    from simnet.report.plot import plot

    try:
        written = plot(args.directory)
    except ValueError as exc:
        raise InputError(str(args.directory), "", str(exc).split(": ", 1)[-1]) from None
    for path in written:
        print(path)
    return 0


def _live(args: argparse.Namespace) -> int:
    from simnet.api import live
    from simnet.live.merge import Part

    try:
        result = live(
            args.scenario, args.overrides, args.seed, args.out, progress=not args.quiet,
            processes=args.processes, shaping=args.shaping, curve=args.curve, keys=args.keys,
            hosts=args.hosts, time_limit_s=args.time_limit, only=args.only,
        )  # fmt: skip
    except (RuntimeError, OSError, ValueError) as exc:  # a process failed: no run directory
        print(f"error: live run failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not isinstance(result, Part):
        return _report(result.summary, result.run_dir, args.quiet)
    if not args.quiet:
        processes = f"{result.processes} process{'es' * (result.processes != 1)}"
        print(f"part of {', '.join(result.nodes)} ({processes}) in {result.path}; "
              "join every launcher's part: simnet live merge PART...")  # fmt: skip
    if result.stopped is not None:
        print(f"incomplete run: {result.stopped}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def _live_merge(args: argparse.Namespace) -> int:
    from simnet.api import live_merge

    result = live_merge(args.parts, args.out)
    return _report(result.summary, result.run_dir, args.quiet)


def _compare(args: argparse.Namespace) -> int:
    from simnet.api import compare
    from simnet.report.compare import format_comparison

    print(format_comparison(compare(args.sim, args.live, args.out)))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from simnet.config.scenario import override_pairs
    from simnet.reproduce import reproduce

    done = reproduce(
        args.paper, args.out, args.quick, args.seeds, args.workers, args.backend,
        override_pairs(args.overrides), progress=not args.quiet,
    )  # fmt: skip
    if not args.quiet:
        print(done.report())
        print(f"tables, figures and report.md in {done.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a user mistake)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["live", "merge"]:
        args = _merge_parser().parse_args(argv[2:])
        args.command = "live merge"
    else:
        args = _parser().parse_args(argv)
    handler = {
        "run": _run,
        "validate": _validate,
        "sweep": _sweep,
        "plot": _plot,
        "compare": _compare,
        "live": _live,
        "live merge": _live_merge,
        "reproduce": _reproduce,
    }[args.command]
    try:
        return handler(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except (PluginError, PointFailed) as exc:
        print(exc.traceback, end="", file=sys.stderr)
        print(f"error: {args.command} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except WorkerLost as exc:
        print(f"error: {args.command} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        done = {
            "sweep": "finished points are kept; run the same command again to resume",
            "reproduce": "finished runs are kept; run the same command again to resume",
        }.get(args.command, "no run directory was completed")
        print(f"interrupted: {done}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
