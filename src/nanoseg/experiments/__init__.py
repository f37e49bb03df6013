"""Experiments stage: the study as a YAML file, runs, results tables, figures and report."""
