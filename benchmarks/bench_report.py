"""``report``, ``show`` and ``logs`` on a big run: wall time and peak memory of each command.

Run: ``python benchmarks/bench_report.py [--events N] [--repeat N] [--dir FOLDER]``. The run is made by the
real engine (``durability: none``): a ``map`` over N / 5 items of two ``set`` steps each, so that every item
writes five events (``map.item``, and a ``step.started`` and ``step.completed`` per step), about N in all.
Each command then runs in its own process, as users run it (``python -m llmflow ...``, output to a file in
the temporary folder); its wall time is taken around the process and its peak resident memory from the
kernel's account of that process (``wait4``). Every number is the median over ``--repeat`` runs of the
command. For scale, the size of ``events.jsonl`` and ``journal.jsonl`` and the memory of a bare
``python -m llmflow --version`` are printed first.

``report`` and ``show`` fold the items of a big map (the page and the tree list the first items and those
that did not succeed), so their memory should stay well under the size of ``events.jsonl``, and ``logs``
streams the file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Events each item of the generated map writes.
EVENTS_PER_ITEM = 5
WORKFLOW = """version: 1
name: bench-report
inputs:
  count: {type: integer}
steps:
  - id: items
    set:
      list: "{{ range(inputs.count) | list }}"
  - id: each
    map:
      items: "{{ steps.items.output.list }}"
      merge: last
      steps:
        - id: first
          set: {x: "{{ item }}"}
        - id: second
          set: {y: "{{ steps.first.output.x }}"}
"""


def make_run(root: Path, events: int) -> str:
    """Run the generated workflow to its end in ``root/state``; the run's id."""
    import llmflow
    from llmflow.runtime import RunOptions, start_run

    path = root / "bench-report.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    options = RunOptions(state_dir=str(root / "state"), durability="none", handle_signals=False)
    count = max(1, events // EVENTS_PER_ITEM)
    summary = asyncio.run(start_run(llmflow.load(path), {"count": count}, options))
    if summary.status != "succeeded":
        raise SystemExit(f"benchmark run failed: {summary.error}")
    return summary.run_id


def measure(command: list[str], cwd: Path, output: Path) -> tuple[float, float]:
    """Wall seconds and peak resident megabytes of one process running ``command``."""
    with output.open("wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen so
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} exited with {process.returncode}")
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    peak = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events in the run (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the temporary run store")
    parser.add_argument("--make-run-in", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_run_in is not None:
        print(make_run(args.make_run_in, args.events))
        return
    if args.dir is not None and not args.dir.is_dir():
        parser.error(f"--dir {args.dir}: no such folder")
    with tempfile.TemporaryDirectory(prefix="llmflow-bench-", dir=args.dir) as folder:
        root = Path(folder)
        start = time.perf_counter()
        # In a process of its own: Linux counts the peak memory of a process before it started a command in
        # that command's peak, so this one must stay small (it imports neither llmflow nor a run).
        made_by = [sys.executable, __file__, "--events", str(args.events), "--make-run-in", str(root)]
        run_id = subprocess.run(made_by, check=True, capture_output=True, text=True).stdout.strip()
        made = time.perf_counter() - start
        run_dir = root / "state" / "runs" / run_id
        lines = sum(1 for _ in (run_dir / "events.jsonl").open("rb"))
        sizes = {name: (run_dir / name).stat().st_size / 1e6 for name in ("events.jsonl", "journal.jsonl")}
        print(f"Run {run_id}: {lines:,} events, made in {made:.1f} s")
        print("  " + ", ".join(f"{name} {size:.1f} MB" for name, size in sizes.items()))
        python = [sys.executable, "-m", "llmflow"]
        state = ["--state-dir", str(root / "state")]
        commands = {
            "python -m llmflow --version (floor)": [*python, "--version"],
            "report RUN -o page.html": [*python, "report", run_id, "-o", str(root / "page.html"), *state],
            "show RUN": [*python, "show", run_id, *state],
            "show RUN --json": [*python, "show", run_id, "--json", *state],
            "logs RUN --json": [*python, "logs", run_id, "--json", *state],
        }
        print(f"Each command in its own process, median of {max(1, args.repeat)}:")
        for label, command in commands.items():
            walls: list[float] = []
            peaks: list[float] = []
            for _ in range(max(1, args.repeat)):
                wall, peak = measure(command, root, root / "out.txt")
                walls.append(wall)
                peaks.append(peak)
            wall, peak = statistics.median(walls), statistics.median(peaks)
            print(f"  {label:38s} wall {wall:7.2f} s   peak RSS {peak:7.1f} MB")
        page = root / "page.html"
        if page.exists():
            print(f"  (the report page: {page.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
