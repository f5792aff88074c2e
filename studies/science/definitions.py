"""The registry of studies: what each one varies, its presets, and what it shows.

A study is data, not code: its axes (in loop order, seed last), its presets,
the instruments it needs, the extra metric groups (`extras.EXTRA_METRICS`)
and plots (`plots.EXTRA_PLOTS`) it adds to the generic ones, and the numbers
its findings compare between no BN and BN. The generic parts need no entry:
every numeric axis with more than one value gets its range metrics, curves
and intervals (`analysis`), and its accuracy plot (`plots`).

Presets are chosen so that the baseline gets a fair chance (the tuning
playbook's rule: tune every nuisance setting in the baseline's favour as much
as in BN's): each model starts from the standard init for its nonlinearity
(`STANDARD_INIT`; `None` in an `init` preset stands for it), the budget lets
the network without BN reach a plateau at its best learning rate, and the
swept axis reaches failure on both sides for every variant (or the report
says where the grid cuts a range off). Measured on digits, 2 cores (see the
README).
"""

from studies.science import sensitivity_studies, training_studies
from studies.science.study_definition import (  # noqa: F401 (re-exported)
    HALF_DECADE_SCALES,
    HALF_DECADES,
    NOISE_VARIANTS,
    TUNE_LRS,
    StudyDefinition,
)

OPTIMIZERS = ("sgd", "momentum", "adam")
INITS = (
    "he_normal",
    "glorot_uniform",
    "glorot_sigmoid",
    "lecun_normal",
    "random_normal",
)
# Step instruments (kbn.callbacks, every probe_every steps; `score` is the
# training and validation score alone, which every step instrument also
# reads; effective_step: the hidden kernels' norms and angular updates,
# `studies.engine.weight_norms`), batch_noise (the normalization layer's own
# noise, measured once after training) and init_grad_norms (each hidden
# kernel's gradient norm at initialization, measured once when the model is
# built).
INSTRUMENTS = (
    "score",
    "percentiles",
    "landscape",
    "effective_step",
    "batch_noise",
    "init_grad_norms",
)
SCHEDULES = ("constant", "warmup-cosine")
# Which batch normalization statistics a cell is scored with after training
# (`studies.engine.hypermodel.CellHyperModel.recomputed_scores`): the moving
# averages training left, statistics recomputed over the training split
# (`kbn.recompute_statistics`), or both (the moving ones the score).
EVAL_STATISTICS = ("moving", "recomputed", "both")
FEATURE_SCALINGS = ("auto", "none", "standardize")

# The built-in models (`studies.inputs.models` builds them) and the init each
# starts from unless told otherwise: He for ReLU units; Glorot & Bengio's
# 4x-Glorot uniform for sigmoid units. The one list of their names: it is
# here, below the inputs, because presets and `make_spec` need it.
STANDARD_INIT = {
    "mlp-relu": "he_normal",
    "mlp-sigmoid": "glorot_sigmoid",
    "cnn": "he_normal",
}
MODELS = tuple(STANDARD_INIT)


# Settings every study starts from; a preset or the command line overrides them.
COMMON = {
    "model": "mlp-relu",
    "depth": None,  # hidden layers; None: the model's own (mlp-relu 6, mlp-sigmoid 3)
    "dataset": "digits",
    "batch_size": 60,  # the original paper's MNIST batch
    "optimizer": "sgd",
    "divergence_threshold": 1e3,  # Bjorck et al. 2018
    "train_size": None,
    "init": None,  # None: the model's standard init (STANDARD_INIT)
    "init_scale": 1.0,
    # whether the init scale multiplies the output layer's kernel too; by
    # default only the hidden layers (those a variant normalizes) are scaled
    "scale_output": False,
    "lr": 0.1,
    "epochs": 15,
    "steps": None,  # a budget in optimizer steps replaces epochs when set
    "instruments": [],
    "probe_every": 10,  # optimizer steps between instrument readings
    "task": None,  # None: from the targets (integer labels: classification)
    "feature_scaling": "auto",
    "target_scaling": "auto",  # regression: standardized unless "none"
    "virtual_batch_size": 16,  # ghost-bn's ghost batch
    "momentum": None,  # None: 0.9 for `momentum`, 0 for `sgd`
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup_fraction": 0.05,  # of the step budget, for warmup-cosine
    # the tuning phase of a study without a learning-rate axis
    # (`studies.science.tuning`): its rates (None: no tuning, every variant
    # at `lr`), its seeds, and, across batch sizes, tuned per size or by the
    # linear scaling rule
    "tune_lrs": None,
    "tune_seeds": 2,
    "lr_scaling": "tuned",
    "eval_statistics": "moving",  # one of EVAL_STATISTICS
    # the convergence study's target validation score (None: the default,
    # `studies.science.convergence.default_target`)
    "target": None,
}

LR_SCALINGS = ("tuned", "linear")


_DEFINITIONS = sensitivity_studies.DEFINITIONS + training_studies.DEFINITIONS
DEFINITIONS = {d.name: d for d in _DEFINITIONS}
STUDIES = tuple(DEFINITIONS)
PRESETS = ("quick", "full")


def get(name):
    """The definition of study `name` (KeyError for an unknown study)."""
    return DEFINITIONS[name]


def tunes_lr(name):
    """Whether study `name` tunes the learning rate per variant (its presets
    have a tuning grid, `tune_lrs`)."""
    return any("tune_lrs" in preset for preset in get(name).presets.values())
