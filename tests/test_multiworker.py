"""Synchronized BN across two worker processes (MultiWorkerMirroredStrategy).

Two fresh interpreters on loopback, one CPU replica each, gRPC (ring)
collectives. Each worker trains one step of Dense -> kbn.BatchNormalization
(synchronized=True) -> Dense on its half of a fixed global batch; the result
must equal one process training on the whole batch, computed here in float64
with plain TensorFlow ops (independent of kbn).
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

FEATURES, HIDDEN, GLOBAL_BATCH = 3, 4, 8
MOMENTUM, EPSILON = 0.5, 1e-3
TIMEOUT_S = 180  # for both workers together; a run takes ~10 s on 2 cores
# Trainable weights in the order of `model.trainable_variables` below, and the
# last part of their variable paths.
TRAINABLE = ("dense_kernel", "gamma", "beta", "head_kernel", "head_bias")
VARIABLE_NAMES = ("kernel", "gamma", "beta", "kernel", "bias")

WORKER = """
import json, os, sys
import numpy as np
import tensorflow as tf

# Collectives must be configured before TensorFlow runs anything.
strategy = tf.distribute.MultiWorkerMirroredStrategy(
    communication_options=tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
)
import keras
import kbn

inputs_path, output_path = sys.argv[1:]
data = dict(np.load(inputs_path))
task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
half = slice(task * len(data["x"]) // 2, (task + 1) * len(data["x"]) // 2)
x, t = data["x"][half], data["t"][half]

with strategy.scope():
    bn = kbn.BatchNormalization(
        synchronized=True, momentum=float(data["momentum"]),
        epsilon=float(data["epsilon"]),
    )
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Dense(data["dense_kernel"].shape[1], use_bias=False),
        bn,
        keras.layers.Dense(1),
    ])
    model.set_weights([
        data["dense_kernel"], data["gamma"], data["beta"],
        np.zeros_like(data["gamma"]), np.ones_like(data["gamma"]),
        data["head_kernel"], data["head_bias"],
    ])

@tf.function
def step(x, t):
    def replica_step(x, t):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            # As Keras does: per-replica loss scaled by 1 / global batch ...
            loss = tf.reduce_sum(tf.square(out - t)) / len(data["x"])
        grads = tape.gradient(loss, model.trainable_variables)
        # ... and gradients all-reduced with SUM.
        ctx = tf.distribute.get_replica_context()
        return loss, ctx.all_reduce("sum", [loss, *grads])

    return strategy.run(replica_step, args=(x, t))

local_loss, (loss, *grads) = strategy.experimental_local_results(
    step(tf.constant(x), tf.constant(t))
)[0]
np.savez(
    output_path,
    trainable=np.array([v.path for v in model.trainable_variables]),
    local_loss=local_loss.numpy(),
    loss=loss.numpy(),
    moving_mean=bn.moving_mean.numpy(),
    moving_variance=bn.moving_variance.numpy(),
    **{f"grad_{i}": g.numpy() for i, g in enumerate(grads)},
)
print("ok")
"""


def _fixed_inputs():
    """A global batch whose halves have very different statistics, and weights."""
    rng = np.random.default_rng(0)
    half = GLOBAL_BATCH // 2
    x = np.concatenate(
        [
            rng.normal(size=(half, FEATURES)),
            rng.normal(size=(half, FEATURES)) * 3.0 + 5.0,
        ]
    )
    return dict(
        x=x.astype("float32"),
        t=rng.normal(size=(GLOBAL_BATCH, 1)).astype("float32"),
        dense_kernel=rng.normal(size=(FEATURES, HIDDEN)).astype("float32"),
        gamma=rng.uniform(0.5, 1.5, size=HIDDEN).astype("float32"),
        beta=rng.uniform(-0.5, 0.5, size=HIDDEN).astype("float32"),
        head_kernel=rng.normal(size=(HIDDEN, 1)).astype("float32"),
        head_bias=np.array([0.3], "float32"),
        momentum=np.float32(MOMENTUM),
        epsilon=np.float32(EPSILON),
    )


def _reference(data, groups):
    """One step in float64, BN statistics per group (1: the whole batch).

    Plain TensorFlow ops and autodiff, independent of kbn. With `groups=2`
    this is what unsynchronized BN would compute on two workers.
    """
    params = [tf.constant(data[name], tf.float64) for name in TRAINABLE]
    kernel, gamma, beta, head_kernel, head_bias = params
    xs = np.split(data["x"].astype("float64"), groups)
    ts = np.split(data["t"].astype("float64"), groups)
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss, means, variances = 0.0, [], []
        for x, t in zip(xs, ts, strict=True):
            h = x @ kernel
            mean, variance = tf.nn.moments(h, axes=[0])
            y = gamma * (h - mean) / tf.sqrt(variance + EPSILON) + beta
            out = y @ head_kernel + head_bias
            loss += tf.reduce_sum(tf.square(out - t)) / GLOBAL_BATCH
            means.append(mean.numpy())
            variances.append(variance.numpy())
    grads = [g.numpy() for g in tape.gradient(loss, params)]
    return dict(loss=loss.numpy(), means=means, variances=variances, grads=grads)


def _free_ports(n):
    """Ports free on every interface (TensorFlow's gRPC server binds 0.0.0.0)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    except OSError as error:
        pytest.skip(f"cannot bind local TCP ports for the workers: {error}")
    finally:
        for s in sockets:
            s.close()


def _worker_env(cluster, index):
    # gRPC honours proxy variables, even for loopback: drop them.
    proxies = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")
    env = {k: v for k, v in os.environ.items() if k.lower() not in proxies}
    task = {"type": "worker", "index": index}
    env.update(
        TF_CONFIG=json.dumps({"cluster": {"worker": cluster}, "task": task}),
        CUDA_VISIBLE_DEVICES="",
        TF_CPP_MIN_LOG_LEVEL="2",
        KERAS_BACKEND="tensorflow",
    )
    return env


def _run_workers(tmp_path, inputs_path, attempts=3):
    """Both workers' results; fails with their logs if either fails."""
    for attempt in range(attempts):
        cluster = [f"127.0.0.1:{port}" for port in _free_ports(2)]
        problem, logs = _run_cluster(cluster, tmp_path, inputs_path)
        if problem is None:
            return [dict(np.load(tmp_path / f"worker{i}.npz")) for i in range(2)]
        # Another process may take a port between _free_ports and the bind.
        port_taken = any("Could not start gRPC server" in log for log in logs)
        if not port_taken or attempt == attempts - 1:
            report = "\n".join(
                f"--- worker {i} ({cluster[i]}) ---\n{log[-5000:]}"
                for i, log in enumerate(logs)
            )
            pytest.fail(f"MultiWorkerMirroredStrategy run failed: {problem}\n{report}")


def _run_cluster(cluster, tmp_path, inputs_path):
    """Runs one process per worker; kills all at the first failure or timeout.

    Returns `(problem, logs)`: `problem` is None when every worker succeeded.
    """
    procs, logs = [], []
    problem = None
    try:
        for index in range(len(cluster)):
            logs.append(open(tmp_path / f"worker{index}.log", "w+"))
            command = [
                sys.executable,
                "-c",
                WORKER,
                str(inputs_path),
                str(tmp_path / f"worker{index}.npz"),
            ]
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=_worker_env(cluster, index),
                    stdin=subprocess.DEVNULL,
                    stdout=logs[-1],
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + TIMEOUT_S
        while any(p.poll() is None for p in procs):
            failed = [(i, p.returncode) for i, p in enumerate(procs) if p.poll()]
            if failed:
                problem = "worker {} exited with code {}".format(*failed[0])
                break
            if time.monotonic() > deadline:
                problem = f"timed out after {TIMEOUT_S} s"
                break
            time.sleep(0.1)
        codes = [p.returncode for p in procs]
        if problem is None and any(codes):
            problem = f"exit codes {codes}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        texts = []
        for log in logs:
            log.seek(0)
            texts.append(log.read())
            log.close()
    return problem, texts


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Both workers' results (one run for the module) and the reference."""
    tmp_path = tmp_path_factory.mktemp("multiworker")
    data = _fixed_inputs()
    np.savez(tmp_path / "inputs.npz", **data)
    workers = _run_workers(tmp_path, tmp_path / "inputs.npz")
    return workers, _reference(data, groups=1)


def test_halves_need_synchronization():
    # Keeps the tests below meaningful: per-worker statistics would be far off.
    data = _fixed_inputs()
    synced, per_worker = _reference(data, groups=1), _reference(data, groups=2)
    mean, variance = synced["means"][0], synced["variances"][0]
    for half_mean in per_worker["means"]:
        assert np.all(np.abs(half_mean - mean) > 0.5 * np.sqrt(variance))
    # Averaging the workers' moving statistics (kbn's aggregation="mean")
    # recovers the global mean of equal halves, but not the global variance.
    assert np.all(np.mean(per_worker["variances"], 0) < 0.8 * variance)
    assert abs(per_worker["loss"] - synced["loss"]) > 0.05 * synced["loss"]
    # (Not beta and the head's bias: a group's normalized values sum to zero
    # whatever its statistics, so their gradients do not depend on them.)
    for name, g_sync, g_half in zip(
        TRAINABLE, synced["grads"], per_worker["grads"], strict=True
    ):
        if name in ("dense_kernel", "gamma", "head_kernel"):
            scale = np.abs(g_sync).max()
            assert np.abs(g_half - g_sync).max() > 0.05 * scale, name


def test_workers_agree_and_match_one_process_statistics(two_workers):
    workers, reference = two_workers
    mean, variance = reference["means"][0], reference["variances"][0]
    for worker in workers:
        paths = [str(p) for p in worker["trainable"]]
        assert tuple(p.rsplit("/", 1)[-1] for p in paths) == VARIABLE_NAMES, paths
        np.testing.assert_allclose(
            worker["moving_mean"], MOMENTUM * 0.0 + (1 - MOMENTUM) * mean, rtol=1e-5
        )
        np.testing.assert_allclose(
            worker["moving_variance"],
            MOMENTUM * 1.0 + (1 - MOMENTUM) * variance,
            rtol=1e-5,
        )
        # The loss is computed from the outputs, normalized with global statistics.
        np.testing.assert_allclose(worker["loss"], reference["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        workers[0]["local_loss"] + workers[1]["local_loss"],
        reference["loss"],
        rtol=1e-5,
    )
    for key in workers[0]:
        if key not in ("local_loss", "trainable"):
            np.testing.assert_allclose(
                workers[0][key], workers[1][key], rtol=1e-6, err_msg=key
            )


def test_gradients_match_one_process(two_workers):
    workers, reference = two_workers
    for worker in workers:
        for i, (name, expected) in enumerate(
            zip(TRAINABLE, reference["grads"], strict=True)
        ):
            scale = np.abs(expected).max()
            np.testing.assert_allclose(
                worker[f"grad_{i}"] / scale,
                expected / scale,
                rtol=1e-4,
                atol=1e-5,
                err_msg=name,
            )
