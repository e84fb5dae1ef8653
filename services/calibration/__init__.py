"""Calibration: in place of the pointer while 'gazeflow calibrate' runs, it writes the samples it fits from."""

from gazeflow.shared.registry import Stage

from .settings import CalibrationConfig

STAGE = Stage(
    "calibration",
    "sink",
    "gazeflow.services.calibration.sink:CalibrationSink",
    input="gaze",
    sections={"calibration": CalibrationConfig},
    optional=True,
)
