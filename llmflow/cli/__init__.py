"""The command-line interface: a thin layer over the Python API."""

from __future__ import annotations


def main() -> None:
    """Console-script entry point: ``run`` and ``resume`` take the fast path when they can, else typer."""
    import gc

    # Start-up allocates many long-lived objects (modules, the graph) and next to no garbage: the collector,
    # which would run ~40 times meanwhile (~10 ms), is off until the run starts (``drive`` turns it on again).
    gc.disable()
    import sys

    # A step output may hold a lone surrogate (a model's or a command's text, or a Python step's value);
    # ``--json`` and ``show`` write it to stdout, whose default strict encoding would fail with a traceback.
    # Written as ``\ud800`` it is the JSON escape of that very character.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        from llmflow.cli.fastpath import main as run_fast

        code = run_fast(sys.argv[1:])
        if code is not None:
            # The command is over: its objects are left to the operating system instead of to the garbage
            # collection Python runs at exit, which walks every object of the ~200 modules a run loads (~15 ms).
            # Sinks, the journal and the run's files were closed explicitly; stdout and stderr are still flushed.
            gc.freeze()
            sys.exit(code)
        gc.enable()
        from llmflow.cli.app import run_app

        run_app()
    except KeyboardInterrupt:  # Ctrl-C while the command starts (typer and rich take a while to import)
        from llmflow.cli.exits import INTERRUPTED

        sys.exit(INTERRUPTED)
