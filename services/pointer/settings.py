"""The pointer's settings: the [pointer] and [camera] tables (gazeflow.shared.settings says how a setting is made)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from gazeflow.shared.settings import Section, setting

FILTERS = ("one-euro", "ema", "none")
CLICKS = ("none", "dwell", "blink")


class CameraConfig(Section):
    """Where the camera is and how it sees: the geometric gaze-to-screen model (services/pointer/gaze_model.py)."""

    hfov_deg: float = setting(70.0, "horizontal field of view (laptop webcams: 60-80 degrees)", ge=10, le=170)
    offset_mm: tuple[float, float] = setting((0.0, 0.0), "from the middle of the screen's top edge: x right, y up")
    ipd_mm: float = setting(63.0, "distance between the pupils (adult median, Dodgson 2004)", ge=30, le=90)
    mirror: bool = setting(True, "the camera faces the user: the image's right is the user's left")


class PointerConfig(Section):
    backend: Literal["auto", "pyautogui", "null"] = setting(
        "auto",
        "pointer backend: auto (pyautogui when a display exists, else null), pyautogui, null (log only)",
        flag="--pointer",
        group="Pointer",
    )
    screen: tuple[int, int] = setting((1920, 1080), "the null backend's screen, in pixels")
    screen_mm: tuple[float, float] = setting((0.0, 0.0), "the screen's size in mm; 0, 0 = what the display reports")
    monitor: int = setting(
        -1,
        "the monitor to point on (0, 1, ...: 'gazeflow calibrate --list-monitors'; -1 = the primary)",
        flag="--monitor",
        group="Pointer",
        metavar="N",
        ge=-1,
    )
    profile: str = setting(
        "default",
        "calibration profile: a name (in the config dir) or a path ('default' when it exists; '' = none)",
        flag="--profile",
        group="Pointer",
        metavar="NAME|PATH",
    )
    filter: Literal["one-euro", "ema", "none"] = setting(
        "one-euro",
        "pointer filter: one-euro (steady when still, quick on a jump), ema, none",
        flag="--filter",
        group="Pointer",
    )
    min_cutoff: float = setting(0.1, "One Euro: cutoff (Hz) while the gaze is still: lower = steadier", gt=0)
    beta: float = setting(0.0015, "One Euro: how fast the cutoff rises with speed (per px/s): higher = less lag", ge=0)
    d_cutoff: float = setting(5.0, "One Euro: cutoff (Hz) of the speed estimate", gt=0)
    smoothing: float = setting(0.5, "ema: weight of the previous point per frame", ge=0, lt=1)
    dead_zone_px: int = setting(8, "moves smaller than this are not made", ge=0)
    click: Literal["none", "dwell", "blink"] = setting(
        "none",
        "how to click: dwell (hold the pointer still), blink (close both eyes 0.5-1.5 s), none",
        flag="--click",
        group="Clicks",
    )
    dwell_ms: float = setting(1000.0, "dwell: the pointer stays this long within dwell_radius_px -> a click", gt=0)
    dwell_radius_px: float = setting(40.0, "dwell: how far the pointer may wander while dwelling", gt=0)
    blink_min_ms: float = setting(
        500.0, "blink: both eyes closed at least this long (natural blinks: 100-400 ms)", gt=0
    )
    blink_max_ms: float = setting(1500.0, "blink: and at most this long (longer is resting the eyes)", gt=0)
    wink: bool = setting(False, "blink: one eye closed (the other open) that long -> a right click")
    open_below: float = setting(
        0.5, "an eye whose probability of being open is below this counts as closed", gt=0, lt=1
    )
    pause_closed_s: float = setting(2.0, "eyes closed this long toggles pause (a gesture); 0 = off", ge=0)
    hotkey: str = setting("<ctrl>+<alt>+p", "toggles pause (pynput's syntax); '' = off; off without a display")
    hands_off_s: float = setting(
        1.5, "after you move the real mouse, gazeflow pauses until it is still this long", gt=0
    )
    auto_pause_mouse: bool = setting(True, "pause while you use the real mouse")
    face_lost_s: float = setting(2.0, "pause while no face has been seen this long; 0 = off", ge=0)
    fail_safe: bool = setting(
        True,
        "pyautogui's screen-corner fail-safe",
        flag={"--no-fail-safe": (False, "switch off pyautogui's screen-corner fail-safe")},
        group="Pointer",
    )
    share: bool = setting(
        False,
        "run even though another gazeflow already moves this display's pointer",
        flag={"--share-pointer": True},
        group="Pointer",
    )
    control: str = setting("", "also answer 'gazeflow ctl --connect' here, e.g. tcp://192.168.1.5:5560")
    max_age_ms: float = setting(500.0, "live input: gaze older than this (since capture) never moves the pointer", gt=0)
    mode: Literal["gaze", "head", "hybrid"] = setting(
        "gaze",
        "what moves the pointer: gaze (where you look), head (your face's movement in the image, relative, like a "
        "head mouse), hybrid (a gaze jump places it, small head movements fine-tune it while the gaze holds)",
        flag="--mode",
        group="Pointer",
    )
    head_gain: float = setting(30.0, "head and hybrid: pixels per mm the face moves, at slow speed", gt=0)
    head_accel: float = setting(1.0, "head: how much faster a quick move goes (per mm a frame); 0 = linear", ge=0)
    head_dead_mm: float = setting(
        0.1, "head: face moves smaller than this a frame (after the filter) are the tracker's noise", ge=0
    )
    head_min_cutoff: float = setting(
        2.0, "head: One Euro cutoff (Hz) of the face's place while still: lower = steadier, slower", gt=0
    )
    head_beta: float = setting(0.05, "head: how fast that cutoff rises with the face's speed (per mm/s)", ge=0)
    saccade_px: float = setting(
        0.0,
        "hybrid: a gaze this far from the pointer places it there (a saccade); 0 = twice the gaze error "
        "(magnifier_error_px, else the profile's), so that the error itself never reads as one",
        ge=0,
    )
    select: Literal["none", "zoom"] = setting(
        "none",
        "zoom (turns dwell clicks on, unless --click blink): a dwell opens a magnifier where you look; a second "
        "dwell inside it acts on the point you chose (Esc or looking away closes it)",
        flag="--select",
        group="Selection",
    )
    zoom: float = setting(
        3.0,
        "the magnifier's enlargement (at most: it shrinks to fit the monitor)",
        ge=1.5,
        le=10,
        flag="--zoom",
        group="Selection",
    )
    select_dwell_ms: float = setting(
        700.0, "the dwell that selects inside the magnifier (its targets are large; the first look took the time)", gt=0
    )
    magnifier_error_px: float = setting(
        0.0, "the gaze error the magnifier covers twice over; 0 = the profile's validation error (else 170 px)", ge=0
    )
    palette: bool = setting(
        False,
        "a docked window of actions (left, right, double, middle, drag, scroll), chosen by dwell (it turns dwell "
        "clicks on, unless --click blink)",
        flag={"--palette": True},
        group="Selection",
    )
    palette_side: Literal["left", "right", "top", "bottom"] = setting(
        "right", "where the palette docks on the monitor", flag="--palette-side", group="Selection"
    )
    palette_at: tuple[int, int] = setting(
        (-1, -1),
        "the palette's top-left corner in desktop pixels, on the monitor the pointer moves on (-1, -1: docked on "
        "palette_side); it runs down (palette_side left or right) or across (top, bottom)",
        flag="--palette-at",
        group="Selection",
        metavar="X Y",
    )
    palette_px: int = setting(110, "the palette's width (docked left or right) or height (top, bottom)", ge=60, le=400)
    action: Literal["left", "right", "double", "middle", "drag", "scroll"] = setting(
        "left", "what a selection does at the start (the palette changes it)", flag="--action", group="Selection"
    )
    scroll_px: float = setting(600.0, "scroll: lines per second at the window's top or bottom edge (x 1/40)", gt=0)
    click_cooldown_ms: float = setting(600.0, "after a click, no other click for this long", ge=0)
    safe_ms: float = setting(300.0, "no click within this long of a lost face, a tracking reset or stale gaze", ge=0)
    adapt: bool = setting(True, "each magnified selection corrects the profile's drift (refitted, saved)")
    adapt_window: int = setting(30, "the selections the drift correction is fitted on, newest", ge=3, le=500)

    @model_validator(mode="after")
    def _consistent(self) -> PointerConfig:
        if min(self.screen) <= 0:
            raise ValueError(f"pointer.screen {list(self.screen)}: a width and a height in pixels")
        if min(self.screen_mm) < 0 or (min(self.screen_mm) == 0 and max(self.screen_mm) > 0):
            raise ValueError(f"pointer.screen_mm {list(self.screen_mm)}: a width and a height in mm, or 0, 0")
        if self.blink_min_ms >= self.blink_max_ms:
            raise ValueError(f"pointer: blink_min_ms ({self.blink_min_ms:g}) must be below blink_max_ms")
        if self.pause_closed_s and self.pause_closed_s * 1000 <= self.blink_max_ms:
            raise ValueError(
                f"pointer.pause_closed_s {self.pause_closed_s:g}: 0 (off) or longer than blink_max_ms, "
                "so that a click never pauses"
            )
        if (self.select == "zoom" or self.palette) and self.click == "none":
            # the magnifier and the palette work by dwell (or by blink, with click = "blink"); not an error: a
            # complete config file (gazeflow config --defaults) says click = "none" and --palette must still work
            self.click = "dwell"
        if self.control and not self.control.startswith("tcp://"):
            raise ValueError(f"pointer.control {self.control!r}: a tcp://ADDRESS:PORT")
        return self
