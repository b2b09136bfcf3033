"""Command line of the benchmarks: `python -m scripts.bench [--quick | --smoke] [--only NAME]`."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from pathlib import Path

from scripts.bench import BENCHMARKS, MODES, run_benchmarks
from scripts.bench.report import update_markdown, write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "benchmarks.md"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description="Measure logstream-kube's processing cost, memory, delivery latency and startup.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller runs, one minute of churn")
    size.add_argument(
        "--smoke", action="store_true",
        help="only a small processing run that checks the benchmark works; no test bed; writes no file unless --output",
    )
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--output", type=Path, help=f"Markdown file to update (default {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the results as JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    mode = "full"
    if args.smoke:
        mode = "smoke"
    elif args.quick:
        mode = "quick"
    selected = ["processing"] if args.smoke else (args.only or list(BENCHMARKS))
    if mode == "smoke" and args.only and args.only != ["processing"]:
        print("python -m scripts.bench: --smoke runs only the processing benchmark", file=sys.stderr)
        return 2

    tables = asyncio.run(run_benchmarks(selected, MODES[mode], mode=mode))
    for table in tables:
        print(table.text(), end="\n\n", flush=True)

    # A smoke run proves the driver works; its numbers must not replace real results.
    output = args.output
    if output is None and not args.smoke:
        output = DEFAULT_OUTPUT
    if output is not None:
        update_markdown(output, tables)
        print(f"updated {output}")
    if args.json_path is not None:
        write_json(args.json_path, tables)
    return 0


if __name__ == "__main__":
    if importlib.util.find_spec("logstream") is None:
        print("python -m scripts.bench: the logstream package is not importable; run from the repository root "
              "after `pip install -e .`", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
