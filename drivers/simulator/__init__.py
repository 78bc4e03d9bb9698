"""Simulated modems on real ptys, with faults: for tests, demos and benchmarks."""
