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

import dataclasses

OPTIMIZERS = ("sgd", "momentum", "adam")
INITS = (
    "he_normal",
    "glorot_uniform",
    "glorot_sigmoid",
    "lecun_normal",
    "random_normal",
)
# The kbn.noise variants (the variant names' registry is `studies.inputs.variants`).
NOISE_VARIANTS = ("bn-batch-statistics", "bn-covariate-shift", "bn-adjustment")
# Step instruments (kbn.callbacks, every probe_every steps; `score` is the
# training and validation score alone, which every step instrument also
# reads) and batch_noise (the normalization layer's own noise, measured once
# after training).
INSTRUMENTS = ("score", "percentiles", "landscape", "batch_noise")
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

# Half-decade grids (x ~3.16): fine enough to locate where training fails.
HALF_DECADES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
HALF_DECADE_SCALES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)

# Settings every study starts from; a preset or the command line overrides them.
COMMON = {
    "model": "mlp-relu",
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

# The tuning grid (plain SGD; scaled for other optimizers): the lr study's
# best rates are 0.1-0.3 without BN and 1-3 with it; on 300 examples (the
# noise study) the net without BN wanted 0.03, the edge of a grid from 0.03,
# so the grid starts at 0.01.
TUNE_LRS = HALF_DECADES[2:9]
LR_SCALINGS = ("tuned", "linear")


@dataclasses.dataclass(frozen=True)
class StudyDefinition:
    """One kind of study.

    Attributes:
        name: The command-line name.
        description: One line for `--help` and the README.
        axes: Axis names in loop order; `seed` last, so a point's seeds
            finish together.
        presets: `quick` and `full`: axis values (`variant`, `lr`, ...,
            `seeds` as a count) and fixed settings over `COMMON`.
        instruments: The `kbn.callbacks` every cell needs.
        metrics: Extra metric groups (`extras.EXTRA_METRICS`).
        plots: Extra plots (`plots.EXTRA_PLOTS`).
        findings: `(summary key, label)` pairs compared as no BN / BN.
        times_steps: Whether, after its cells, the study times each
            variant's training step in one process, the variants
            interleaved (`studies.engine.step_timing`).
    """

    name: str
    description: str
    axes: tuple
    presets: dict
    instruments: tuple = ()
    metrics: tuple = ()
    plots: tuple = ()
    findings: tuple = ()
    times_steps: bool = False


_DEFINITIONS = (
    StudyDefinition(
        "lr",
        "learning rate x normalization variant x seed",
        ("variant", "lr", "seed"),
        {
            # 6x100 ReLU MLP, He init: without BN it trains to ~0.97 between
            # LR 0.03 and 0.3 and diverges from 1; with BN it trains from 0.1
            # to 3 and stops learning at 10. The grid reaches failure on both
            # sides for both variants.
            "quick": {
                "variant": ("none", "bn"),
                "lr": HALF_DECADES[2:9],
                "seeds": 5,
                "epochs": 15,
            },
            "full": {
                "variant": ("none", "keras", "bn"),
                "lr": HALF_DECADES,
                "seeds": 5,
                "epochs": 30,
            },
        },
    ),
    StudyDefinition(
        "init",
        "init family x init scale x normalization variant x seed",
        ("variant", "init", "init_scale", "seed"),
        {
            # At LR 0.1, the no-BN net's best rate (the lr study). The scale
            # multiplies the hidden kernels, those a variant normalizes (the
            # output layer's too only with scale_output). Measured with BN
            # (`python -m benchmarks.scale_invariance`, 300 steps): hidden
            # kernels x a trained at a^2 x lr, the rest at lr, follow scale 1
            # at lr up to BN's epsilon (W_a / a = W_1 to 1e-8 in float64 with
            # epsilon 1e-8 at a = 3 and 10, to 1-4% at 0.1 and 0.3; 4-14%
            # apart at the studies' epsilon 1e-3, float32), with
            # validation accuracies within 1.5 points once the statistics
            # are recomputed. At one rate for every variable (these cells)
            # the scale changes only the hidden layers' rate (lr / a^2
            # there), not the output layer's or BN's gamma and beta. And the
            # moving variance starts at 1 and still holds 5% of that start
            # after 300 steps: at a = 0.1 and 0.3 it costs the accuracy (0.907
            # and 0.830 with it, 0.970 with recomputed statistics, 0.952 at
            # scale 1); at a = 3 and 10 training does (0.893, 0.833).
            "quick": {
                "variant": ("none", "bn"),
                "init": (None,),  # the model's standard init
                "init_scale": HALF_DECADE_SCALES[1:9],
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 15,
            },
            "full": {
                "variant": ("none", "bn"),
                "init": (None, "glorot_uniform"),
                "init_scale": HALF_DECADE_SCALES,
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 20,
            },
        },
    ),
    StudyDefinition(
        "lr-init",
        "the 2-D grid learning rate x init scale, per variant and seed",
        ("variant", "lr", "init_scale", "seed"),
        {
            "quick": {
                "variant": ("none", "bn"),
                "lr": (0.01, 0.1, 1.0, 10.0),
                "init_scale": (0.1, 1.0, 10.0),
                "seeds": 5,
                "epochs": 15,
            },
            "full": {
                "variant": ("none", "bn"),
                "lr": (0.001, 0.01, 0.1, 1.0, 10.0),
                "init_scale": (0.01, 0.1, 1.0, 10.0, 100.0),
                "seeds": 5,
                "epochs": 20,
            },
        },
    ),
    StudyDefinition(
        "noise",
        "normalization variants incl. kbn.noise models on a small training "
        "set: the train/validation gap",
        ("variant", "seed"),
        {
            "quick": {
                "variant": ("none", "bn") + NOISE_VARIANTS,
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 40,
                "train_size": 300,
            },
            "full": {
                "variant": ("none", "keras", "bn") + NOISE_VARIANTS,
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 100,
                "train_size": 300,
            },
        },
        metrics=("generalization",),
        plots=("train_vs_val",),
    ),
    StudyDefinition(
        "covariate-shift",
        "Ioffe & Szegedy's Figure 1: test accuracy and the 15/50/85th "
        "percentiles of a sigmoid's input over training, with and without BN",
        ("variant", "seed"),
        {
            # The 3x100 sigmoid MLP, batch 60, plain SGD; Glorot & Bengio's
            # init for sigmoid units.
            "quick": {
                "variant": ("none", "bn"),
                "model": "mlp-sigmoid",
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 40,
                "lr": 0.5,
            },
            "full": {
                "variant": ("none", "bn"),
                "model": "mlp-sigmoid",
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 60,
                "lr": 0.5,
                "probe_every": 20,
            },
        },
        instruments=("percentiles",),
        plots=("covariate_shift",),
        findings=(("percentile_drift", "percentile drift"),),
    ),
    StudyDefinition(
        "landscape",
        "Santurkar et al.'s Figures 2 and 4: training accuracy, loss range "
        "and gradient predictiveness of no BN, BN and noisy BN",
        ("variant", "seed"),
        {
            # One rate for all three nets, inside the no-BN net's usable
            # range (the lr study), so the comparison is not a divergence.
            "quick": {
                "variant": ("none", "bn", "noisy-bn"),
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 15,
                "lr": 0.1,
            },
            "full": {
                "variant": ("none", "bn", "noisy-bn"),
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 30,
                "lr": 0.1,
            },
        },
        instruments=("landscape",),
        metrics=("train_accuracy",),
        plots=("landscape_accuracy", "landscape"),
        findings=(
            ("mean_loss_range", "mean loss range"),
            ("mean_grad_change", "mean gradient change"),
            ("max_beta_smoothness", "max beta-smoothness"),
        ),
    ),
    StudyDefinition(
        "batch-size",
        "batch size x normalization variant x seed at a fixed step budget: "
        "how BN's own noise grows as the batch shrinks",
        ("variant", "batch_size", "seed"),
        {
            # A fixed number of optimizer steps (not epochs), so a small
            # batch is not given more updates; one learning rate for all
            # (the no-BN net's best in the lr study). Ghost BN's ghost batch
            # is 16, so it equals BN at 16 and below.
            "quick": {
                "variant": ("none", "bn", "ghost-bn", "layer-norm"),
                "batch_size": (4, 8, 16, 32, 64, 128, 256),
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "tune_seeds": 1,  # 7 batch sizes: 196 tuning cells
                "steps": 400,
                "lr": 0.1,
                # small batches and short budgets leave the moving averages
                # behind: each cell is scored with recomputed statistics too
                "eval_statistics": "both",
            },
            "full": {
                "variant": (
                    "none",
                    "keras",
                    "bn",
                    "ghost-bn",
                    "layer-norm",
                    "group-norm",
                ),
                "batch_size": (2, 4, 8, 16, 32, 64, 128, 256, 512),
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "steps": 1500,
                "lr": 0.1,
                "eval_statistics": "both",
            },
        },
        instruments=("batch_noise",),
        metrics=("batch_noise",),
        plots=("batch_noise",),
    ),
    StudyDefinition(
        "convergence",
        "steps and seconds to a target validation score per variant, each at "
        "its own tuned rate, with the time per step measured interleaved",
        ("variant", "seed"),
        {
            # Ioffe & Szegedy's Figure 2 question: how many steps (and
            # seconds, BN's own cost included) each variant needs to reach
            # a score every variant reaches. The validation score is read
            # every 5 steps (a quarter epoch of digits at batch 60).
            "quick": {
                "variant": ("none", "keras", "bn"),
                "seeds": 5,
                "tune_lrs": TUNE_LRS[1:5],
                "tune_seeds": 1,
                "epochs": 10,
                "probe_every": 5,
            },
            "full": {
                "variant": ("none", "keras", "bn"),
                "seeds": 10,
                "tune_lrs": TUNE_LRS,
                "epochs": 30,
                "probe_every": 5,
            },
        },
        instruments=("score",),
        metrics=("convergence",),
        plots=("convergence",),
        times_steps=True,
    ),
)

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
