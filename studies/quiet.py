"""Imports Keras and TensorFlow without their start-up log.

TensorFlow prints a few lines from C++ when it loads, before its log level
applies ("All log messages before absl::InitializeLog() ...", "Could not find
cuda drivers", "failed call to cuInit" as an *error* on a machine with CUDA
libraries but no GPU, the CPU-instructions notice). They say nothing about
the study and read like failures. `import_backend` loads Keras and its
backend with file descriptor 2 pointed at a temporary file, then writes back
every line that is not one of those, so real warnings and errors stay
visible. After that, `TF_CPP_MIN_LOG_LEVEL=1` (set only if the user has not
set it) hides TensorFlow's INFO lines and keeps its warnings and errors.
"""

import contextlib
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|oneDNN custom operations are on"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|Attempting to register factory for plugin"
)


@contextlib.contextmanager
def filtered_stderr(noise=NOISE):
    """Drops the lines of `noise` that anything (C++ included) writes to
    standard error inside the block; the others are written on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not noise.search(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def import_backend():
    """Imports Keras and its backend (and initializes TensorFlow's devices,
    which logs the CUDA lines) without the start-up noise; a no-op once
    Keras is loaded."""
    if "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    with filtered_stderr():
        import keras

        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()
