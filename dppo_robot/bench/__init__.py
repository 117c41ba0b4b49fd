"""Benchmarks: `dppo-robot bench inference` (latency of the sampling chain against the machine's floor)."""
