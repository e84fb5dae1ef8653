"""Stage 5: move the pointer where the user looks; write results and metrics."""
