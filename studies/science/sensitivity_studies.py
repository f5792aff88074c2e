"""The sensitivity studies: how accuracy moves with the learning rate, the
init scale, the loss landscape, BN's noise, shifted inputs and the batch
size, with and without normalization (entries of `definitions`)."""

from studies.science.study_definition import (
    HALF_DECADE_SCALES,
    HALF_DECADES,
    NOISE_VARIANTS,
    TUNE_LRS,
    StudyDefinition,
)

DEFINITIONS = (
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
)
