"""What the view draws of the pointer: its state, as status lines at the top left."""

from __future__ import annotations

from typing import Any

from gazeflow.shared.canvas import GREY, RED, WHITE, YELLOW, Canvas


def pointer(canvas: Canvas, header: dict[str, Any]) -> None:
    decision, eyes = header.get("pointer"), header.get("eyes")
    if header.get("paused"):
        canvas.line("pointer", "PAUSED", RED)
    if decision and "x" in decision:
        state = f"pointer {decision['x']}, {decision['y']}" + (" moved" if decision.get("moved") else "")
        if decision.get("dwell", 0) > 0:
            state += f"  dwell {decision['dwell']:.0%}"
        canvas.line("pointer", state, WHITE)
        if decision.get("click"):
            canvas.line("pointer", f"CLICK {decision['click']}", YELLOW)
        _selection(canvas, decision)
    elif not header.get("paused"):
        shut = eyes is not None and min(eyes.values()) < 0.5
        canvas.line("pointer", f"pointer holds still ({'an eye is closed' if shut else 'no face or gaze'})", GREY)


def _selection(canvas: Canvas, decision: dict[str, Any]) -> None:
    """The selection's state: the action a selection does, its event this frame, the live error."""
    event = decision.get("select") or {}
    words = {
        "open": "MAGNIFIER open",
        "close": f"magnifier closed ({event.get('why', '')})",
        "palette": f"action chosen: {event.get('action')}",
        "scrolled": "scrolling ended",
    }
    if event.get("event") == "act":
        blocked = " BLOCKED (not safe yet)" if event.get("blocked") else ""
        canvas.line("pointer", f"SELECTED {event['action']} at {event['at'][0]}, {event['at'][1]}{blocked}", YELLOW)
    elif event.get("event") in words:
        canvas.line("pointer", words[event["event"]], YELLOW)
    if "action" in decision:
        canvas.line("pointer", f"action {decision['action']}", WHITE)
    if "error_px" in decision:
        canvas.line("pointer", f"live error {decision['error_px']:.0f} px = {decision['error_deg']:.1f} deg", GREY)
