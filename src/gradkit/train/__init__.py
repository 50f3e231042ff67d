"""The lecture's full training recipe on real data (``gradkit train``).

    gk.train.data      digits / .npz loading, the stratified split, standardization, the epoch iterator
    gk.train.models    the linear softmax classifier and the ReLU MLP, plain functions over param dicts
    gk.train.loop      ``fit``: one epoch = one ``lax.scan``, eval per epoch, best-val checkpoint, vmapped sweeps
    gk.train.report    metrics.json, curves.png and params.npz; ``gk.train.load(run_dir)`` reads the params back

>>> parts = gk.train.data.standardize(gk.train.data.split(*gk.train.data.load_digits()))
>>> result = gk.train.fit(gk.train.models.mlp(64, (256,), 10), lambda h: gk.adamw(h["learning_rate"]),
...                       {"learning_rate": 1e-3}, parts, epochs=20)
"""

from gradkit.train import data, loop, models, report
from gradkit.train.loop import fit
from gradkit.train.report import load

__all__ = ["data", "fit", "load", "loop", "models", "report"]
