"""The training studies: how fast each variant trains, in steps and in
seconds (entries of `definitions`)."""

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
)
