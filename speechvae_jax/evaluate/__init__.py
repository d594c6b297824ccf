"""Evaluation of a run on the paper's axes: offline scorers, probes on frozen features, the report."""
