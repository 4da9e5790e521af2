"""Monitoring: reference profiles, per-partition metrics in bounded memory, drift statistics, and reports.

The statistics are those Evidently applies by default to large data (Wasserstein distance normed by the
reference's standard deviation for numbers, Jensen-Shannon distance for text), taken from scipy:
Evidently itself does not import under pandas 3.
"""
