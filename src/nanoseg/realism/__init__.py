"""Realism: statistics of micrographs, a distance between sets, calibration of the generator."""
