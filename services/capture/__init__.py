"""Stage 1: read frames from a camera or a video file and send them into the pipeline."""
