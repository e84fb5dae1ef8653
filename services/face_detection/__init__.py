"""Stage 2: find the face in the full frame; send only the region around it downstream."""
