"""keras.applications models converted to kbn train one step like the stock
ones, on TensorFlow (here) and JAX (a fresh interpreter): `applications_check`.

Slow (about 25-55 s a model on 2 cores, mostly building and compiling), so
outside the default run; InceptionV3's `scale=False` layers, which failed on
JAX, are also covered by Keras's own suite on JAX (test_keras_suite.py).
"""

import pytest
from applications_check import check
from conftest import run_script

MODELS = ["InceptionV3", "ResNet50", "MobileNetV2", "Xception", "DenseNet121"]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_converted_application_trains_like_stock_on_tensorflow(name):
    check([name])


@pytest.mark.slow
def test_converted_applications_train_like_stock_on_jax():
    pytest.importorskip("jax")
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "import applications_check\n"
        f"applications_check.check({MODELS!r})\n"
    )
    out = run_script(
        code, env={"KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1"}, timeout=1200
    )
    assert out.count(" ok") == len(MODELS), out
