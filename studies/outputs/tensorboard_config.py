"""The experiment-level HParams configuration at the root of the logs.

Keras Tuner writes one HParams session per trial but no experiment
configuration, so the dashboard would infer the domains from whatever
sessions exist. Writing `hparams_config` at the root with the exact grid
values of every axis and the chosen metrics gives the HParams table,
parallel-coordinates and scatter views the whole grid, even mid-study.
"""

import glob
import os

from studies import folder


# (tag, group, display name): Keras's TensorBoard callback writes epoch
# scalars under `train/` and `validation/` inside each session folder.
# Regression studies log `epoch_mse` where classification logs `epoch_accuracy`.
def metrics_for(task):
    score = "mse" if task == "regression" else "accuracy"
    return (
        (f"epoch_{score}", "validation", f"val {score}"),
        ("epoch_loss", "validation", "val loss"),
        (f"epoch_{score}", "train", f"train {score}"),
        ("epoch_loss", "train", "train loss"),
    )


def write(logdir, spec):
    """Writes the `hparams_config` for `spec` into `logdir`, once.

    Returns:
        True if it was written now, False if the folder already had one.
    """
    if glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        return False
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = [
        hp.HParam(name, hp.Discrete(list(values))) for name, values in spec.axes.items()
    ]
    metrics = [
        hp.Metric(tag, group=group, display_name=display)
        for tag, group, display in metrics_for(spec.fixed.get("task"))
    ]
    # TensorFlow writes the events file in place: made in a private folder
    # beside the logs and copied in atomically, so a kill never leaves half
    # a config (whose presence would stop the next run from writing one)
    with folder.temporary_folder(os.path.dirname(os.path.abspath(logdir))) as staging:
        writer = tf.summary.create_file_writer(staging)
        with writer.as_default():
            hp.hparams_config(hparams=hparams, metrics=metrics)
        writer.close()
        for name in sorted(os.listdir(staging)):
            with open(os.path.join(staging, name), "rb") as f:
                folder.write(os.path.join(logdir, name), f.read())
    return True
