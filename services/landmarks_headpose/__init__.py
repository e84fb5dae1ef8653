"""Stage 3: landmarks and head pose on the face crop (in parallel); cut the eyes."""
