"""The front end's first two stages: load YAML text into a positioned document, validate it."""
