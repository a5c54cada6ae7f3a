"""Wild cases, nineteenth group: healthy setups written to probe false alarms.

The healthy scripts live in ``examples/wild/``, each in the manner of a common pattern of
public training code that the earlier groups lacked: the beginner tutorials' loop that
converts its numpy arrays with ``torch.from_numpy`` at every epoch and trains on all of
them at once; a 1-D function fitted on an ordered ``linspace`` grid fed whole at every step;
a classifier whose training loop adds an auxiliary reconstruction term through
``model.recon_head(...)`` only every fiftieth step; RetinaNet's focal loss with the output
bias set to the prior probability of a positive; Kendall's uncertainty weighting of two
task losses, whose total goes below zero by design.

Unlike the earlier groups these were written as probes, run with nndoctor, and the first
three drew false alarms that were then fixed with them in view (``batch-repeated``,
``cannot-overfit-tiny-batch``, ``params-without-grad``): all five are ``dev``, and none has
faults yet. Names start with ``wild-``.
"""

from __future__ import annotations

from nndoctor.faults.registry import HealthyCase, register_healthy

for case in (
    HealthyCase(
        "wild-tutorial-regression-numpy",
        "dev",
        "beginner-tutorial regression loop: numpy arrays converted with torch.from_numpy "
        "inside the loop at every epoch, the whole set of 200 samples per step (full batch, "
        "no DataLoader), MSE, Adam",
        script="wild/tutorial_regression_numpy.py",
    ),
    HealthyCase(
        "wild-sine-fit-full-batch",
        "dev",
        "1-D function fit on 256 ordered linspace points fed whole at every step (the first "
        "rows of the batch are neighbours), tanh MLP, MSE, Adam 1e-2 with StepLR",
        script="wild/sine_fit_full_batch.py",
    ),
    HealthyCase(
        "wild-aux-reconstruction",
        "dev",
        "classifier whose training loop adds a reconstruction term through "
        "model.recon_head(features) every 50th step only: the head never runs in the first "
        "observed steps",
        script="wild/aux_reconstruction.py",
    ),
    HealthyCase(
        "wild-focal-dense-detection",
        "dev",
        "RetinaNet-style dense scoring: about 1% positive locations, sigmoid focal loss "
        "normalised by the positives, output bias at -log((1 - 0.01) / 0.01), SGD momentum",
        script="wild/focal_dense_detection.py",
    ),
    HealthyCase(
        "wild-uncertainty-weighted-mtl",
        "dev",
        "two task losses weighted by learned log-variances (Kendall et al.): the total goes "
        "below zero once the errors are small, by design",
        script="wild/uncertainty_weighted_mtl.py",
    ),
):
    register_healthy(case)
