"""The LEMF (receiver and mediation): X2/X3 in, per-task/per-call intercept output on disk."""
