"""Calibration: targets on the screen, samples from the pipeline, a fit on top of the geometric model, a profile."""
