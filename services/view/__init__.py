"""The view: the annotated frames in a window (--show) or a video file (--output)."""
