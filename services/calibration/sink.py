"""The calibration sink: in place of the pointer, it moves nothing; its results lines (the runtime's sink end
writes them, line by line) carry each frame's capture time and size too: the samples ``gazeflow calibrate``
fits from."""

from __future__ import annotations

from gazeflow.shared.stage import Processor


class CalibrationSink(Processor):
    keeps_pixels = False
    result_extras = ("t_capture", "source")
