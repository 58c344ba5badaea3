"""Entry point for ``python -m llmflow``."""

from llmflow.cli import main

if __name__ == "__main__":
    main()
