import math

import numpy as np
import pytest
import zmq

from gazeflow.shared import geometry


def test_detections_stop_at_padding_and_threshold():
    raw = np.zeros((1, 1, 200, 7), dtype=np.float32)
    raw[0, 0, 0] = [0, 1, 0.9, 0.1, 0.2, 0.3, 0.6]
    raw[0, 0, 1] = [0, 1, 0.3, 0.5, 0.5, 0.6, 0.6]  # below threshold
    raw[0, 0, 2] = [-1, 0, 0.99, 0, 0, 1, 1]  # padding: everything after is ignored
    raw[0, 0, 3] = [0, 1, 0.99, 0, 0, 1, 1]
    found = geometry.detections(raw, 1000, 500, 0.5)
    assert len(found) == 1
    box, conf = found[0]
    assert box == pytest.approx((100.0, 100.0, 300.0, 300.0), abs=1e-3) and conf == pytest.approx(0.9)


def test_follow_prefers_the_tracked_face_then_the_largest():
    small, large = (0, 0, 10, 10), (50, 50, 100, 100)
    assert geometry.follow([small, large], None) == large
    assert geometry.follow([small, large], (1, 1, 11, 11)) == small
    assert geometry.follow([small, large], (300, 300, 310, 310)) == large
    assert geometry.follow([], large) is None


def test_crop_square_widens_and_squares_like_the_reference_demo():
    x0, y0, side = geometry.crop_square((100.0, 100.0, 200.0, 300.0))  # w 100, h 200
    assert side == round(200 * 1.13)
    cx = 100 - 0.067 * 100 + 100 * 1.15 / 2
    cy = 100 - 0.028 * 200 + 200 * 1.13 / 2
    assert x0 == round(cx - side / 2) and y0 == round(cy - side / 2)


def test_partly_visible_faces_policy():
    assert geometry.visible_fraction((0, 0, 100), 1000, 1000) == 1.0
    assert geometry.visible_fraction((-50, 0, 100), 1000, 1000) == 0.5  # below MIN_VISIBLE: dropped
    assert geometry.visible_fraction((-50, 0, 100), 1000, 1000) < geometry.MIN_VISIBLE


def test_region_is_clipped_to_the_frame():
    assert geometry.region((10, 20, 100), 120, 110) == (0, 0, 120, 110)
    assert geometry.region((400, 400, 100), 1000, 1000) == (375, 375, 525, 525)


def test_cut_pads_outside_with_black_and_keeps_source_coordinates():
    image = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    out = geometry.cut(image[2:8, 2:8], (2, 2), (0, 0, 5, 5))
    assert out.shape == (5, 5, 3)
    assert (out[:2] == 0).all() and (out[:, :2] == 0).all()
    np.testing.assert_array_equal(out[2:, 2:], image[2:5, 2:5])
    inside = geometry.cut(image[2:8, 2:8], (2, 2), (3, 3, 6, 7))
    np.testing.assert_array_equal(inside, image[3:7, 3:6])
    assert np.shares_memory(inside, image)  # inside the image: a view, no copy


def test_eye_box_is_clamped_to_bounds():
    assert geometry.eye_box(np.array([50.0, 50.0]), 20, (0, 0, 100, 100)) == (40, 40, 60, 60)
    assert geometry.eye_box(np.array([5.0, 50.0]), 20, (0, 0, 100, 100)) == (0, 40, 15, 60)
    assert geometry.eye_box(np.array([-50.0, 50.0]), 20, (0, 0, 100, 100)) is None


def test_landmarks_map_back_to_source_pixels():
    raw = np.array([0.25, 0.5, 0.75, 0.5, 0.5, 0.6, 0.3, 0.8, 0.7, 0.8], dtype=np.float32)
    points = geometry.landmarks_to_source(raw, (100, 200, 40))
    assert points[0] == (110.0, 220.0) and points[1] == (130.0, 220.0)


def test_unroll_gaze_rotates_back_by_roll_and_normalises():
    # zero roll: only normalised
    assert geometry.unroll_gaze(np.array([3.0, 0.0, -4.0]), 0.0) == pytest.approx([0.6, 0.0, -0.8])
    # x' = x cos r + y sin r, y' = -x sin r + y cos r
    r = 30.0
    out = geometry.unroll_gaze(np.array([1.0, 0.0, 0.0]), r)
    assert out == pytest.approx([math.cos(math.radians(r)), -math.sin(math.radians(r)), 0.0])


def test_rotate_turns_counter_clockwise_for_positive_angles():
    image = np.zeros((21, 21, 3), dtype=np.uint8)
    image[10, 15:] = 255  # a bar pointing right
    turned = geometry.rotate(image, 90.0)
    assert turned[:7, 10].mean() > 100  # now it points up
    assert turned[10, 15:].mean() < 50


def test_gaze_angles():
    assert geometry.gaze_angles([0.0, 0.0, -1.0]) == pytest.approx((0.0, 0.0))
    h, v = geometry.gaze_angles([0.5, 0.0, -0.866])
    assert h == pytest.approx(30.0, abs=0.1) and v == pytest.approx(0.0)
    h, v = geometry.gaze_angles([0.0, 0.5, -0.866])
    assert h == pytest.approx(0.0) and v == pytest.approx(30.0, abs=0.1)


def test_a_shared_frame_gives_the_same_eye_crops_as_a_copied_region():
    """On one host face detection passes the frame's slot on instead of copying the face region:
    landmarks_headpose must cut exactly the same pixels (eye boxes clamped to the region) either way."""
    from gazeflow.services.face_detection.processor import FaceDetection
    from gazeflow.services.landmarks_headpose.processor import LandmarksHeadPose
    from gazeflow.shared.config import Config
    from gazeflow.shared.framering import RingConsumer
    from gazeflow.shared.frames import Frames
    from gazeflow.shared.messages import Message

    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    raw = np.zeros((1, 1, 200, 7), np.float32)
    raw[0, 0, 0] = [0, 1, 0.9, 0.05, 0.1, 0.25, 0.6]  # a face near the left edge: the region is clipped there
    raw[0, 0, 1, 0] = -1
    messages = {}
    for share in (False, True):
        fd = FaceDetection(Config())
        fd.frames = Frames(RingConsumer(zmq.Context.instance()), share=share)  # as on one host, or across two
        msg = Message.frame(0, 0.0, {"width": 1280, "height": 720, "fps": 30})
        msg.header["frame_ref"] = {"slot": 0}
        msg.arrays["frame"] = frame
        msg = fd.finish(msg, {"face": {"out": raw}})
        assert ("frame" in msg.arrays) is share and ("region" in msg.arrays) is not share
        lh = LandmarksHeadPose(Config())
        lh.frames = fd.frames
        assert lh.prepare(msg)["landmarks"][0].shape == (1, 48, 48, 3)
        x0, _, side = msg.header["crop"]
        # the second eye sits on the region's right edge (inside the frame), so its box is clamped there
        eyes = np.array([[0.3, 0.4, (msg.header["region"][2] - 3 - x0) / side, 0.4, 0.5, 0.6, 0.3, 0.8, 0.7, 0.8]])
        pose = {"angle_y_fc": np.array([[5.0]]), "angle_p_fc": np.array([[-3.0]]), "angle_r_fc": np.array([[12.0]])}
        messages[share] = lh.finish(msg, {"landmarks": {"out": eyes.astype(np.float32)}, "head_pose": pose})
    copied, shared = messages[False], messages[True]
    assert set(shared.arrays) == set(copied.arrays) == {"left_eye", "right_eye"}  # the frame is not passed on
    for name in ("left_eye", "right_eye"):
        assert np.array_equal(shared.arrays[name], copied.arrays[name]), name
    assert shared.header["landmarks"] == copied.header["landmarks"]
