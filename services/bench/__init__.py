"""gazeflow bench: pipeline figures as ratios measured in the same run.

Runs run-sync and run-all --max-speed on the same video, alternating, for each precision asked, and a
real-time run for end-to-end latency; then the pointer, tracking, precision and the per-stage profile. Writes
JSON and a Markdown table (``report.py``). Machines here are shared and noisy: compare the ratios. The bench
measures; what a figure should be is not part of the product: a targets file (``--targets``, the project's is
docs/targets.toml) is read and each target gets a verdict.

One module per thing measured: ``pipeline`` (run-sync vs run-all, precisions, latency, hops, workers, start),
``pointer`` (edges, filters, view, eye state), ``tracking``, ``precision`` (execution precision, quantize),
``profile`` (CPU per stage), ``common`` (a run, the agreement of two runs); ``run`` does them all in turn.
"""

from .run import bench

__all__ = ["bench"]
