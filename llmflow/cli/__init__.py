"""The command-line interface: a thin layer over the Python API."""

from __future__ import annotations


def main() -> None:
    """Console-script entry point."""
    from llmflow.cli.app import run_app

    run_app()
