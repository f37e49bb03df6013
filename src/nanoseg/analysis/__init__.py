"""From ring measurements to what a paper reports: statistics with intervals (``statistics``), one
results folder written the same way by ``predict`` and ``measure`` (``results``, ``measure_masks``),
a browsable HTML report (``report``) and the comparison of samples (``compare``)."""
