import os

import numpy as np
import pytest

from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.inference import AsyncModel, Fusion, SyncModel, compile_model, read_model

from tiny_models import scale_model


@pytest.fixture
def tiny(tmp_path):
    return scale_model(tmp_path / "scale.xml")


def image(value: int) -> np.ndarray:
    return np.full((1, 8, 8, 3), value, dtype=np.uint8)  # u8 NHWC, converted inside the graph


def test_sync_model_takes_u8_nhwc_images(tiny):
    model = SyncModel(compile_model(tiny, "CPU", "LATENCY"))
    assert model.infer({0: image(10)})["y"].item() == pytest.approx(20.0)


@pytest.mark.parametrize("device", ["AUTO", "AUTO:CPU", "HETERO:CPU", "MULTI:CPU"])
def test_device_strings_work_as_openvino_defines_them(tiny, device):
    from gazeflow.shared.inference import core

    core().set_property({"CACHE_DIR": ""})  # an earlier test's cache: MULTI loses the tiny model's port names
    model = SyncModel(compile_model(tiny, device, "LATENCY"))
    assert model.infer({0: image(3)})["y"].item() == pytest.approx(6.0)


def test_async_model_parks_each_result_by_key(tiny):
    r, w = os.pipe()
    os.set_blocking(w, False)
    model = AsyncModel(compile_model(tiny, "CPU", "THROUGHPUT"), 4, w)
    assert model.size == 4
    for key in range(40):
        while not model.free():
            os.read(r, 64)
        model.submit({0: image(key)}, key)
    model.wait_all()
    got = {key: model.take(key) for key in range(40)}
    assert all(got[key][0]["y"].item() == pytest.approx(2.0 * key) for key in range(40))
    assert model.in_flight == 0 and os.read(r, 4096)  # every completion woke the pipe


def test_callback_errors_are_reraised_in_the_stage_thread(tiny):
    _r, w = os.pipe()
    model = AsyncModel(compile_model(tiny, "CPU", "LATENCY"), 1, w)
    model.names = ["no-such-output"]  # the callback's get_tensor fails inside OpenVINO's thread
    model.submit({0: image(1)}, 0)
    model.wait_all()
    with pytest.raises(GazeflowError, match="inference failed"):
        model.check()


def test_missing_device_lists_what_the_machine_has(tiny):
    with pytest.raises(GazeflowError, match=r"device NPU\.7 is not available; this machine has: .*CPU"):
        compile_model(tiny, "NPU.7", "LATENCY")


def test_corrupt_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("garbage")
    with pytest.raises(GazeflowError, match="not an OpenVINO IR") as err:
        compile_model(bad, "CPU", "LATENCY")
    assert "\n" not in str(err.value)


def test_models_fused_into_one_request_give_what_each_gives_alone(tmp_path):
    """Two models of a stage compiled as one: one request per frame, the same outputs, per-model keys."""
    small = scale_model(tmp_path / "a.xml", size=8, factor=2.0, output="a_out")
    big = scale_model(tmp_path / "b.xml", size=12, factor=3.0, output="b_out")
    fusion = Fusion.of({"a": read_model(small), "b": read_model(big)})
    assert fusion is not None and fusion.key == "a+b"
    r, w = os.pipe()
    model = AsyncModel(compile_model(fusion.model, "CPU", "LATENCY"), 2, w)
    model.submit(fusion.merge({"a": {0: image(10)}, "b": {0: np.full((1, 12, 12, 3), 7, np.uint8)}}), "frame")
    model.wait_all()
    outputs = fusion.split(model.take("frame")[0])
    assert outputs["a"]["a_out"].item() == pytest.approx(20.0) and outputs["b"]["b_out"].item() == pytest.approx(21.0)
    alone = SyncModel(compile_model(big, "CPU", "LATENCY")).infer({0: np.full((1, 12, 12, 3), 7, np.uint8)})
    assert np.array_equal(alone["b_out"], outputs["b"]["b_out"])
    with pytest.raises(GazeflowError, match="need inputs for all of them"):
        fusion.merge({"a": {0: image(1)}})
    os.close(r)


def test_models_whose_outputs_share_a_name_are_not_fused(tiny, tmp_path):
    other = scale_model(tmp_path / "other.xml", size=8, factor=5.0)  # its output is 'y' too
    assert Fusion.of({"a": read_model(tiny), "b": read_model(other)}) is None


def test_an_input_written_where_staging_says_is_run_without_a_copy(tiny):
    """prepare may write an input straight into the infer request that the next submit starts."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    model = AsyncModel(compile_model(tiny, "CPU", "THROUGHPUT"), 2, w)
    for key in range(8):
        while not model.free():
            os.read(r, 64)
        place = model.staging(0)
        request = model.requests[model._idle[0]]
        assert np.shares_memory(place, request.get_input_tensor(0).data)
        place[...] = key
        model.submit({0: place}, key)
    model.wait_all()
    assert [model.take(key)[0]["y"].item() for key in range(8)] == pytest.approx([2.0 * key for key in range(8)])
    sync = SyncModel(compile_model(tiny, "CPU", "LATENCY"))
    place = sync.staging(0)
    place[...] = 10
    assert sync.infer({0: place})["y"].item() == pytest.approx(20.0)
    assert sync.infer({0: image(4)})["y"].item() == pytest.approx(8.0)  # other arrays are copied in, as before
    os.close(r)


def test_staging_in_fused_models_finds_each_models_input(tmp_path):
    small = scale_model(tmp_path / "a.xml", size=8, factor=2.0, output="a_out")
    big = scale_model(tmp_path / "b.xml", size=12, factor=3.0, output="b_out")
    fusion = Fusion.of({"a": read_model(small), "b": read_model(big)})
    r, w = os.pipe()
    model = AsyncModel(compile_model(fusion.model, "CPU", "LATENCY"), 1, w)
    a, b = model.staging(fusion.index("a", 0)), model.staging(fusion.index("b", 0))
    assert a.shape == (1, 8, 8, 3) and b.shape == (1, 12, 12, 3)
    a[...], b[...] = 10, 7
    model.submit(fusion.merge({"a": {0: a}, "b": {0: b}}), "frame")
    model.wait_all()
    outputs = fusion.split(model.take("frame")[0])
    assert outputs["a"]["a_out"].item() == pytest.approx(20.0) and outputs["b"]["b_out"].item() == pytest.approx(21.0)
    os.close(r)
