"""Stage four: the async engine that runs a compiled workflow and journals every completed node."""
