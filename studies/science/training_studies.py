"""The training studies: how fast each variant trains, in steps and in
seconds, how deep it can go, and how weight decay sets its effective step
(entries of `definitions`)."""

from studies.science.study_definition import (
    TUNE_LRS,
    StudyDefinition,
)

DEFINITIONS = (
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
    StudyDefinition(
        "depth",
        "gradient norm per layer at initialization (against Yang et al.'s "
        "pi/(pi-1) growth per layer) and how well each depth trains, without "
        "BN, with BN and with BN in residual blocks, each at its own tuned rate",
        ("variant", "depth", "seed"),
        {
            # Yang et al. 2019: BN without skips explodes the gradient at
            # init by about pi/(pi-1) per layer (ReLU, large batch); the
            # residual variant should not. The rate is tuned per variant
            # at the grid's median depth (`tuning.reference_depth`).
            "quick": {
                "variant": ("none", "bn", "bn-residual"),
                "depth": (2, 8, 24),
                "seeds": 5,
                "tune_lrs": TUNE_LRS[1:5],
                "tune_seeds": 1,
                "epochs": 4,
            },
            "full": {
                "variant": ("none", "bn", "bn-residual"),
                "depth": (2, 4, 8, 16, 32, 48),
                "seeds": 5,
                "tune_lrs": TUNE_LRS,
                "epochs": 20,
            },
        },
        instruments=("init_grad_norms",),
        plots=("init_grad_norms",),
    ),
    StudyDefinition(
        "weight-decay",
        "accuracy, kernel norms and the angular update per step of the hidden "
        "layers over weight decay x learning rate per variant, against the "
        "equilibrium sqrt(2 lr wd) of scale-invariant layers",
        ("variant", "weight_decay", "lr", "seed"),
        {
            # The rates bracket both variants' best (the lr study: no BN
            # 0.1-0.3, BN 1-3, plain SGD). Weight decay alone shrinks ||W||
            # by exp(-lr wd steps), and BN's equilibrium needs that well
            # past 1: the quick budget (180 steps) reaches it at lr 1, wd
            # 1e-2 only, the full one (540 steps) at lr wd >= 3e-3. Cells
            # run one at a time (a step instrument), so the quick grid is
            # the two decays and two rates that show it.
            "quick": {
                "variant": ("none", "bn"),
                "weight_decay": (0.0, 1e-2),
                "lr": (0.3, 1.0),
                "seeds": 5,
                "epochs": 10,
                "probe_every": 10,
            },
            "full": {
                "variant": ("none", "bn"),
                "weight_decay": (0.0, 1e-3, 1e-2),
                "lr": (0.1, 0.3, 1.0, 3.0),
                "seeds": 5,
                "epochs": 30,
                "probe_every": 10,
            },
        },
        instruments=("effective_step",),
        plots=("weight_decay",),
    ),
)
