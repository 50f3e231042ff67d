"""The optimizer race of lecture chapter 9: engine (``race``), pictures (``plots``) and the HTML page (``page``).

>>> result = gk.race.race(gk.landscapes.beale(), {"Adam": gk.race.optimizer("adam")}, [1e-2, 1e-1], steps=500)
"""

from gradkit.race.engine import LECTURE, Racer, RaceResult, escape_box, known_optimizers, optimizer, race

__all__ = ["LECTURE", "RaceResult", "Racer", "escape_box", "known_optimizers", "optimizer", "race"]
