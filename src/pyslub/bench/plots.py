"""Plots of bench runs (filled in below)."""


def bench_plots(path, plan, peers_result, *, tsc_khz=None):
    return []
