import os

import numpy as np
import pytest

from gazeflow.shared.errors import GazeflowError
from gazeflow.shared.inference import AsyncModel, SyncModel, compile_model

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
