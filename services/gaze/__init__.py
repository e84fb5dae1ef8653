"""Stage 4: gaze vector from the two eye crops and the head pose."""
