"""The command-line interface: a thin layer over the Python API."""

from __future__ import annotations


def main() -> None:
    """Console-script entry point: ``run`` and ``resume`` take the fast path when they can, else typer."""
    import sys

    from llmflow.cli.fastpath import main as run_fast

    code = run_fast(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from llmflow.cli.app import run_app

    run_app()
