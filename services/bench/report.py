"""The bench's results as Markdown, and verdicts against a targets file.

A targets file (TOML) lists ``[[target]]`` tables: ``what`` (a label),
``figure`` (a path into the results, dots between keys, ``*`` for every key at
that level), and ``at_most``, ``at_least`` or ``equals``; optionally ``issue``
and ``unit``. A figure the run did not measure gets no verdict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gazeflow.shared import registry
from gazeflow.shared.errors import GazeflowError, read_document

# the stage a message arrives at -> the link it came over, for the default chain
HOPS = {link.down: f"{link.name} ({link.up} -> {link.down})" for link in registry.links(registry.default_chain())}
CHECKS = {"at_most": lambda v, x: v <= x, "at_least": lambda v, x: v >= x, "equals": lambda v, x: v == x}
WORDS = {"at_most": "<=", "at_least": ">=", "equals": "="}


def load_targets(path: Path) -> list[dict[str, Any]]:
    out = read_document(path, "targets file").get("target", [])
    for t in out:
        if not isinstance(t.get("figure"), str) or sum(k in t for k in CHECKS) != 1:
            raise GazeflowError(f"targets file {path}: {t!r} needs a figure and one of {', '.join(CHECKS)}")
    return out


def _figures(r: Any, path: list[str], prefix: str = "") -> list[tuple[str, float]]:
    """Every value at ``path`` in the results, with the path it was found at."""
    if not path:
        return [(prefix, r)] if isinstance(r, int | float) and not isinstance(r, bool) else []
    if not isinstance(r, dict):
        return []
    keys = list(r) if path[0] == "*" else [path[0]] if path[0] in r else []
    return [f for k in keys for f in _figures(r[k], path[1:], f"{prefix}.{k}" if prefix else k)]


def verdicts(results: dict[str, Any], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t in targets:
        check = next(k for k in CHECKS if k in t)
        unit = t.get("unit", "")
        for where, value in _figures(results, t["figure"].split(".")):
            out.append(
                {
                    "target": t.get("what", t["figure"]),
                    "figure": where,
                    "issue": t.get("issue"),
                    "measured": f"{value:g}{unit}",
                    "limit": f"{WORDS[check]} {t[check]:g}{unit}",
                    "met": CHECKS[check](value, t[check]),
                }
            )
    return out


def default_realtime(r: dict[str, Any]) -> dict[str, Any] | None:
    """The real-time runs at the default precision (FP16), else the first benched."""
    runs = r.get("realtime", {})
    return runs.get("FP16") or next(iter(runs.values()), None)


def _models(r: dict[str, Any]) -> list[str]:
    """Load, first inference, latency and throughput per model; complexity and hot layers."""
    lines: list[str] = []
    if "models" in r:
        fps = r.get("models_paced_fps") or 0
        paced = f"median ms at {fps:g} fps" if fps else "paced ms"
        lines += [
            "Models (CPU; LATENCY: one request at a time, back to back"
            + (f" and started {fps:g} times a second" if fps else "")
            + "; THROUGHPUT: the optimal number in flight):",
            "",
            f"| model | precision/hint | load ms | first ms | median ms | {paced} | fps | requests |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for model, entry in r["models"].items():
            for key, m in entry["runs"].items():
                at_pace = f"{m['paced_ms']:.2f}" if "paced_ms" in m else "-"
                lines.append(
                    f"| {model} | {key} | {m['load_ms']:.0f} | {m['first_ms']:.1f} | {m['median_ms']:.2f} "
                    f"| {at_pace} | {m['fps']:.1f} | {m['requests']} |"
                )
        lines += ["", "| model | GFLOPs | M params | top layers (FP16, share of inference time) |", "|---|---|---|---|"]
        for model, entry in r["models"].items():
            c = entry["complexity"]
            top = ", ".join(f"{h['layer']} ({h['type']}, {h['share']:.0%})" for h in entry["hot_layers_fp16"][:3])
            lines.append(f"| {model} | {c['gflops']:.3f} | {c['mparams']:.3f} | {top} |")
        lines.append("")
    return lines


def _pipeline(r: dict[str, Any]) -> list[str]:
    """run-sync against run-all per precision, and the bound of face detection alone."""
    lines: list[str] = []
    lines += [
        f"Pipeline on the whole video, median of {r['repeat']} alternating runs:",
        "",
        "| precision | run-sync fps | run-all fps | fps ratio | run-sync CPU ms/frame | run-all CPU ms/frame "
        "| CPU ratio | same results |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for precision, e in r["pipeline"].items():
        s, a = e["run-sync"], e["run-all"]
        same = {True: "yes", False: "NO"}.get(e.get("same_results"), "-")
        lines.append(
            f"| {precision} | {s['fps']:.1f} | {a['fps']:.1f} | {e['fps_ratio']:.2f}x | "
            f"{s['cpu_ms_per_frame']:.1f} | {a['cpu_ms_per_frame']:.1f} | {e['cpu_ratio']:.2f}x | {same} |"
        )
    lines += [
        "",
        "Same results: every run of that precision, run-sync and run-all (each placement), wrote the same "
        "per-frame results (face, landmarks, head pose, gaze, pointer) as the first run-sync.",
    ]
    placed = {p: e for p, e in r["pipeline"].items() if "run-all-separate" in e}
    if placed:
        lines += [
            "",
            "Placement (run-all's processes on this host, same rounds):",
            "",
            "| precision | placement | fps | CPU ms/frame | cores busy | fps vs run-sync | CPU vs run-sync |",
            "|---|---|---|---|---|---|---|",
        ]
        for precision, e in placed.items():
            auto, sep, sync = e["run-all"], e["run-all-separate"], e["run-sync"]
            for label, a, fr, cr in (
                (f"auto: {e['placement']}", auto, e["fps_ratio"], e["cpu_ratio"]),
                ("a process per stage", sep, e["separate_fps_ratio"], e["separate_cpu_ratio"]),
            ):
                lines.append(
                    f"| {precision} | {label} | {a['fps']:.1f} | {a['cpu_ms_per_frame']:.1f} | "
                    f"{a.get('cores', 0):.2f} | {fr:.2f}x | {cr:.2f}x |"
                )
            lines.append(
                f"| {precision} | run-sync (one process) | {sync['fps']:.1f} | "
                f"{sync['cpu_ms_per_frame']:.1f} | {sync.get('cores', 0):.2f} | 1.00x | 1.00x |"
            )
    if "int8_all_vs_fp16_sync" in r:
        lines += ["", f"run-all FP16-INT8 vs run-sync FP16: {r['int8_all_vs_fp16_sync']:.2f}x fps"]
    for precision, b in r.get("bound", {}).items():
        lines.append(
            f"{precision}: face detection alone {b['face_detection_fps']:.1f} fps at best; run-all reaches "
            f"{b['run_all_fraction']:.0%} of it, run-sync {b['run_sync_fraction']:.0%}"
        )
    return lines


def _scaling(r: dict[str, Any]) -> list[str]:
    """Face-detection workers."""
    lines: list[str] = []
    if "scaling" in r:
        lines += [
            "",
            "Face-detection workers (FP16 run-all --max-speed, ratio to the first row):",
            "",
            "| workers | fps | ratio | CPU ms/frame |",
            "|---|---|---|---|",
        ]
        for n, e in r["scaling"].items():
            lines.append(f"| {n} | {e['fps']:.1f} | {e['fps_ratio']:.2f}x | {e['cpu_ms_per_frame']:.1f} |")
    return lines


def _agreement(r: dict[str, Any]) -> list[str]:
    """What a lower precision changes, frame by frame."""
    lines: list[str] = []
    if "agreement" in r:
        ag = r["agreement"]
        lines += [
            "",
            f"What a lower precision changes, frame by frame against {ag['reference']} (run-sync, "
            "whole video; p50 / p95):",
            "",
            "| precision | frames | face found in one only | face box px | head pose deg | gaze deg | pointer px |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, a in ag["runs"].items():
            cells = " | ".join(
                f"{a[k]['p50']:.2f} / {a[k]['p95']:.2f}" for k in ("face_px", "head_pose_deg", "gaze_deg")
            )
            lines.append(
                f"| {label} | {a['frames']} | {a['face_found_in_one_only']} | {cells} "
                f"| {a['pointer_px']['p50']:.0f} / {a['pointer_px']['p95']:.0f} |"
            )
    return lines


def _realtime(r: dict[str, Any]) -> list[str]:
    """End-to-end latency at real-time pace, per precision."""
    lines: list[str] = []
    for precision, rt in r.get("realtime", {}).items():
        e2e = rt["e2e_ms"]
        lines += [
            "",
            f"{precision} run-all --realtime --fps {rt['fps']:g} (the middle of {len(rt['rounds'])} runs): "
            f"end-to-end p50 {e2e['p50']:.1f} ms, p95 {e2e['p95']:.1f} ms, {rt['frames']} frames, "
            f"{rt['dropped']} dropped; face detection alone ({precision}, LATENCY, measured before and after "
            f"the run) {rt['face_detection_alone_ms']:.1f} ms back to back, "
            f"{rt.get('face_detection_alone_paced_ms', 0):.1f} ms started {rt['fps']:g} times a second, "
            "inside the pipeline "
            f"{rt['face_detection_infer_in_pipeline_ms']['p50']:.1f} ms; the rest of the pipeline adds "
            f"{rt['rest_of_pipeline_ms']['p50']:.1f} ms per frame (p50 of end to end minus the frame's own "
            f"face-detection service time), {rt['added_to_face_inference_ms']['p50']:.1f} ms counting face "
            "detection's pre- and post-processing",
        ]
        rounds = rt["rounds"]
        if len(rounds) > 1:
            lines.append(
                f"(all {len(rounds)} runs, in order: end-to-end p50 "
                + " / ".join(f"{x['e2e_ms']['p50']:.1f}" for x in rounds)
                + " ms; face detection alone "
                + " / ".join(f"{x['face_detection_alone_ms']:.1f}" for x in rounds)
                + " ms; added per frame "
                + " / ".join(f"{x['added_to_face_inference_ms']['p50']:.1f}" for x in rounds)
                + " ms; dropped "
                + " / ".join(str(x["dropped"]) for x in rounds)
                + ")"
            )
    return lines


def _hops(r: dict[str, Any]) -> list[str]:
    """Transport per hop."""
    lines: list[str] = []
    rt = default_realtime(r)
    if rt:
        lines += [
            "",
            "Transport per hop, p50 / p95 ms:",
            "",
            f"| link | real-time ({rt['precision']}) | max-speed (FP16) |",
            "|---|---|---|",
        ]
        fast = r.get("transport_max_speed", {})
        for stage, name in HOPS.items():
            hop, ms = rt["transport"][stage], fast.get(stage)
            cell = f"{ms['p50']:.2f} / {ms['p95']:.2f}" if ms else "-"
            lines.append(f"| {name} | {hop['p50']:.2f} / {hop['p95']:.2f} | {cell} |")
    return lines


def _pointer(r: dict[str, Any]) -> list[str]:
    """Where the pointer goes, and the filters."""
    lines: list[str] = []
    if "pointer" in r:
        pt = r["pointer"]
        lines += ["", "The pointer at real-time pace (null backend, 1920x1080, 527x296 mm):", ""]
        for label in ("uncalibrated", "calibrated"):
            if label in pt:
                lines.append(f"- {label}: {pt[label]['at_edge']:.0%} of the frames within 5 px of a screen edge")
        if "calibration" in pt:
            c = pt["calibration"]
            before, after = c["uncalibrated"], c["calibrated"]
            lines.append(
                f"- calibration from docs/demo-targets.json: validation median {before['median_px']:.0f} px"
                f" = {before['median_deg']:.1f} deg uncalibrated, {after['median_px']:.0f} px"
                f" = {after['median_deg']:.1f} deg calibrated (kept: {c['used']})"
            )
        st = pt["steadiness"]
        lines += [
            "",
            f"Filters on the same raw points ({st['fixations']} fixations by dispersion, "
            f"{st['in_fixations']:.0%} of the frames; {st['jumps']} jumps between them):",
            "",
            "| filter | jitter in fixations, px | vs none | lag at a jump, frames (p50 / max) |",
            "|---|---|---|---|",
        ]
        for kind in ("none", "ema", "one-euro"):
            f = st[kind]
            lines.append(
                f"| {kind} | {f['jitter_px']:.1f} | {f.get('jitter_vs_none', 1.0):.2f} | "
                f"{f['lag_frames_p50']:g} / {f['lag_frames_max']} |"
            )
    return lines


def _view_and_start(r: dict[str, Any]) -> list[str]:
    """What the view costs; start times."""
    lines: list[str] = []
    if "view" in r:
        v = r["view"]
        lines += [
            "",
            f"The view at {v['fps']:g} fps, real time (median of alternating runs): end-to-end p50 "
            f"{v['without']:.1f} ms without, {v['with --output']:.1f} ms with --output "
            f"({v['difference_ms']:+.1f} ms)",
        ]
    if "start" in r:
        st = r["start"]
        lines += [
            "",
            f"Start, run-all to the first result / first pointer move: cold (no model cache) "
            f"{st['cold']['first_result_s']:.2f} / {st['cold']['first_move_s']:.2f} s, warm "
            f"{st['warm']['first_result_s']:.2f} / {st['warm']['first_move_s']:.2f} s "
            f"({st['warm_vs_cold']:.2f}x)",
        ]
    return lines


def _tracking(r: dict[str, Any]) -> list[str]:
    """Tracking against detecting every frame."""
    lines: list[str] = []
    if "tracking" in r:
        tr = r["tracking"]
        lines += [
            "",
            "Tracking the face between detections, against detecting every frame (run-sync, max speed; "
            "gaze change median / p95 in degrees):",
            "",
            "| video | run | gaze change | faces | detector share | fps | CPU ms/frame | lost |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for video, v in tr["videos"].items():
            for name, row in v["rows"].items():
                extra = "- | 100% | - | - | -"
                if "faces" in row:
                    extra = (
                        f"{row['faces']}/{v['faces_every_frame']} | {row['detector_share']:.0%} | "
                        f"{row['fps']:.0f} | {row['cpu_ms_per_frame']:.1f} | {row['lost']}"
                    )
                lines.append(f"| {video} | {name} | {row['median_deg']:.2f} / {row['p95_deg']:.2f} | {extra} |")
        lines.append("")
        largest = ", ".join(f"{video} {v['largest_n_within_floor']}" for video, v in tr["videos"].items())
        holds = "within" if tr["default_within_floor_on_every_video"] else "NOT within"
        lines.append(
            f"Largest N within the floor: {largest}; the default is {tr['default_n']} ({holds} the floor "
            "on every video)"
        )
        m, rt = tr["max_speed"], tr["realtime"]
        lines += [
            "",
            f"run-all --max-speed tracking {m['run_all_tracking_fps']:.1f} fps, "
            f"{m['run_all_tracking_cpu_ms']:.1f} CPU ms/frame; run-sync every frame "
            f"{m['run_sync_every_frame_fps']:.1f} fps, "
            f"{m['run_sync_every_frame_cpu_ms']:.1f} CPU ms/frame: {m['fps_ratio']:.2f}x fps, "
            f"{m['cpu_ratio']:.2f}x CPU",
            f"run-all --realtime --fps {rt['fps']:g}: end-to-end p50 "
            f"{rt['tracking']['e2e_p50_ms']:.1f} ms tracking, {rt['every frame']['e2e_p50_ms']:.1f} ms every "
            f"frame ({rt['e2e_ratio']:.2f}x); cores used {rt['tracking']['cores']:.2f} against "
            f"{rt['every frame']['cores']:.2f} ({rt['cores_ratio']:.2f}x); dropped {rt['tracking']['dropped']} "
            f"and {rt['every frame']['dropped']}",
        ]
        if "realtime_camera" in tr:
            cam = tr["realtime_camera"]
            lines.append(
                f"The same from {cam['input']} (what capture asks a camera for): end-to-end p50 "
                f"{cam['tracking']['e2e_p50_ms']:.1f} / {cam['every frame']['e2e_p50_ms']:.1f} ms "
                f"({cam['e2e_ratio']:.2f}x); cores {cam['tracking']['cores']:.2f} / {cam['every frame']['cores']:.2f} "
                f"({cam['cores_ratio']:.2f}x); dropped {cam['tracking']['dropped']} and {cam['every frame']['dropped']}"
            )
    return lines


def _execution_precision(r: dict[str, Any]) -> list[str]:
    """Execution precision against f32."""
    lines: list[str] = []
    if "execution_precision" in r:
        lines += [
            "",
            "Execution precision (INFERENCE_PRECISION_HINT), run-sync at max speed, every frame "
            "detected; gaze change against f32, median / p95 degrees:",
            "",
            "| precision | runs as | fps | CPU ms/frame | gaze vs f32 |",
            "|---|---|---|---|---|",
        ]
        for label, e in r["execution_precision"].items():
            if "error" in e:
                lines.append(f"| {label} | {e['error'][:60]} | - | - | - |")
                continue
            g = e["gaze_vs_f32"]
            lines.append(
                f"| {label} | {'/'.join(e['used'])} | {e['fps']:.1f} | {e['cpu_ms_per_frame']:.1f} | "
                f"{g['median_deg']:.2f} / {g['p95_deg']:.2f} |"
            )
    return lines


def _quantization(r: dict[str, Any]) -> list[str]:
    """quantize's local INT8 against the published INT8."""
    lines: list[str] = []
    if "quantization" in r and "error" not in r["quantization"]:
        qz = r["quantization"]
        lines += [
            "",
            f"Quantization: gazeflow quantize on the first frames, compared from frame "
            f"{qz['held_out_from_frame']} on (held out) with FP16; median / p95:",
            "",
            "| precision | models ms/frame | fps | CPU ms/frame | MB | face box px | head pose deg | gaze deg | "
            "pointer px |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p in ("FP16", "FP16-INT8", "local-INT8"):
            e, v = qz[p], qz[p]["vs_fp16"]
            cells = " | ".join(
                f"{v[k][0]:.2f} / {v[k][1]:.2f}" for k in ("face_px", "head_pose_deg", "gaze_deg", "pointer_px")
            )
            lines.append(
                f"| {p} | {e.get('model_ms', 0):.2f} | {e['fps']:.1f} | {e['cpu_ms_per_frame']:.1f} | "
                f"{e['size_mb']:.2f} | {cells} |"
            )
        lines.append(
            f"local-INT8 moves gaze {qz['gaze_vs_published']:.2f}x as much as the published INT8, at "
            f"{qz['speed_vs_published']:.2f}x its speed (the models' inference time per frame)"
        )
        lines += [f"- quantize: {line}" for line in qz.get("quantize_said", []) if not line.startswith("use them")]
    return lines


def _profile(r: dict[str, Any]) -> list[str]:
    """Where each stage's CPU goes."""
    lines: list[str] = []
    if "profile" in r and "skipped" not in r["profile"]:
        lines += [
            "",
            "Where each stage's CPU goes at 30 fps (py-spy samples of a live run; share of the samples):",
            "",
            "| stage | CPU s | native threads (inference, decoding, ZeroMQ I/O) | OpenVINO calls | OpenCV | "
            "ZeroMQ/msgpack | our Python | busiest own functions |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for stage, p in r["profile"].items():
            sh = p["share"]
            top = ", ".join(f"{name} {share:.0%}" for name, share in p["top_own"][:3])
            native = sh.get("native threads", 0)
            cells = " | ".join(f"{sh[k]:.0%}" for k in ("inference", "OpenCV", "ZeroMQ/msgpack", "our Python"))
            lines.append(f"| {stage} | {p.get('cpu_s', 0):.1f} | {native:.0%} | {cells} | {top} |")
    return lines


def _eye_state(r: dict[str, Any]) -> list[str]:
    """What the eye state costs."""
    lines: list[str] = []
    if "eye_state" in r:
        e = r["eye_state"]
        lines += [
            "",
            f"Eye state: the gaze stage's inference {e['gaze']:.2f} ms alone, {e['gaze+eye_state']:.2f} ms "
            f"with the eye state compiled in ({e['added_ms']:+.2f} ms per frame)",
        ]
    return lines


def target_lines(r: dict[str, Any]) -> list[str]:
    """The verdicts."""
    lines: list[str] = []
    if r.get("targets"):
        lines += ["", "| target | measured | limit | verdict |", "|---|---|---|---|"]
        for t in r["targets"]:
            what = f"{t['target']} (`{t['figure']}`)"
            lines.append(f"| {what} | {t['measured']} | {t['limit']} | {'met' if t['met'] else 'MISSED'} |")
    return lines


def select_markdown(r: dict[str, Any]) -> str:
    """The selection benchmark as a table per mode and gaze error: success, time, wrong clicks per size."""
    lines = [
        f"Selection (simulated user, {r['trials_per_size']} trials per size; time at {r['fps']:g} fps):",
        "",
        "mode: dwell = a plain dwell click where the gaze reads (the baseline), zoom = --select zoom, head and",
        "hybrid = --mode head|hybrid (+zoom: with --select zoom). success: the first click lands on the target;",
        "median s: the time to a successful selection, in the video's time (so not this machine's speed); wrong",
        "clicks: clicks beside the target, of all clicks; timeouts: trials with no click in 15 s.",
        "",
        "| mode | gaze error | size px | success | median s | wrong clicks | timeouts |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, errors in r["modes"].items():
        for error, e in errors.items():
            for size, s in e["sizes"].items():
                median = f"{s['median_s']:.2f}" if s["median_s"] is not None else "-"
                lines.append(
                    f"| {mode} | {error} ({e['error_px']:.0f} px) | {size} | {s['success']:.0%} | {median} | "
                    f"{s['wrong_clicks']:.0%} | {s['timeouts']} |"
                )
    d = r.get("drift")
    if d:
        live = ", ".join(f"{n}: {v:.0f} px" for n, v in d["live_px"].items())
        lines += [
            "",
            f"Drift corrected by use: a 3-degree drift added to a {d['profile_px']:.0f}-px profile error; the "
            f"pointer's own estimate of its error after the correction, after N selections: {live}; after 20 "
            f"{d['after_20_vs_profile']}x the profile's error (1 = the drift fully taken out; target <= 1.5)",
        ]
        looks = d.get("first_look_px") or {}
        if all(looks.values()):
            lines.append(
                "Where the first look fell from the target (median): "
                + ", ".join(f"{k} {v:.0f} px" for k, v in looks.items())
            )
    return "\n".join(lines) + "\n"


def _decode(r: dict[str, Any]) -> list[str]:
    """What a frame's decode costs capture: the demo against a webcam's MJPEG."""
    if "decode" not in r:
        return []
    d = r["decode"]
    parts = ", ".join(f"{label} {v['p50']:.2f} ms" for label, v in d["ms_per_frame"].items())
    return ["", f"Decode per frame, one thread (median of {d['frames']}): {parts}"]


def _peer(r: dict[str, Any]) -> list[str]:
    """The peer on the same video and machine, and ours against it."""
    p = r.get("peer") or {}
    if "fps" not in p:
        return ["", f"Peer: left out ({p['skipped']})"] if "skipped" in p else []
    line = f"Peer {p['name']}: {p['fps']:.1f} fps, {p['cpu_ms_per_frame']:.2f} ms CPU a frame"
    if "ours_cpu_vs_peer" in p:
        line += f"; run-all at max speed: {p['ours_cpu_vs_peer']}x its CPU a frame, {p['ours_fps_vs_peer']}x its fps"
    if "rounds_cpu_vs_peer" in p:
        line += f" (the median of rounds beside it, alternating: {', '.join(map(str, p['rounds_cpu_vs_peer']))})"
    return ["", line]


def accuracy_lines(r: dict[str, Any]) -> list[str]:
    """The calibration's errors on the demo's documented targets, with and without the iris stage, and the
    peer's by the same splits."""
    a = r.get("accuracy") or {}
    if "gaze" not in a:
        return ["", f"Accuracy: left out ({a['skipped']})"] if "skipped" in a else []

    def cell(v: dict[str, Any]) -> str:
        return f"{v['median_px']:.0f} px" if v else "-"

    lines = [
        "",
        f"Calibration accuracy on {a['targets']} (median; held out: each target left out of the fit in turn; same: "
        "fitted on each target's first frames, measured on its last 30%)",
        "",
        "| features | model | held-out targets | same targets | check targets |",
        "|---|---|---|---|---|",
    ]
    shown = {"before": "gaze, squared loss (the fit before #32)", "gaze": "gaze", "gaze+iris": "gaze+iris"}
    for label, name in shown.items():
        v = a.get(label)
        if v:
            lines.append(
                f"| {name} | {v['model']} | {cell(v['held_out_target'])} | {cell(v['same_target'])} "
                f"| {cell(v['check_targets'])} |"
            )
    peer = a.get("peer") or {}
    if "same_target" in peer:
        lines.append(f"| peer: {peer['name']} | | {cell(peer['held_out_target'])} | {cell(peer['same_target'])} | |")
    elif "skipped" in peer:
        lines.append(f"| peer: left out ({peer['skipped']}) | | | | |")
    cost = a.get("iris_cost") or {}
    if cost:
        lines += ["", f"The iris stage costs {cost['cpu_ms_per_frame']:+.2f} ms CPU a frame (run-sync at max speed)"]
    return lines


def panel_lines(r: dict[str, Any]) -> list[str]:
    """What the panel costs at real time."""
    p = r.get("panel")
    if not p:
        return []
    return [
        "",
        f"Panel at {p['fps']:g} fps ({p['frames']} frames, medians): its process uses "
        f"{p['idle_share_of_a_core']:.4f} of a core with no browser, {p['browser_share_of_a_core']:.4f} with a "
        f"browser's requests; the other processes {p['stages, without']:.3f} cores without it, "
        f"{p['stages, panel, no browser']:.3f} and {p['stages, panel, a browser']:.3f} with it",
    ]


def _select(r: dict[str, Any]) -> list[str]:
    """The selection benchmark, when it ran."""
    if "select" not in r or "skipped" in r["select"]:
        return []
    return ["", *select_markdown(r["select"]).splitlines()]


SECTIONS = (
    _models,
    _pipeline,
    _scaling,
    _agreement,
    _realtime,
    _hops,
    _pointer,
    _view_and_start,
    _tracking,
    _execution_precision,
    _quantization,
    _profile,
    _eye_state,
    _decode,
    _peer,
    accuracy_lines,
    panel_lines,
    _select,
    target_lines,
)


def to_markdown(r: dict[str, Any]) -> str:
    """The whole bench as Markdown: one section per part that ran, then the verdicts."""
    lines = [f"Machine: {r['machine']}; input {r['input']}; {time.strftime('%Y-%m-%d')}.", ""]
    for section in SECTIONS:
        lines += section(r)
    return "\n".join(lines) + "\n"
