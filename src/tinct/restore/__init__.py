"""Restoration of old prints before colour: damage (scratches, cracks, dust, torn corners)
found by a small network and inpainted, film grain denoised, faded tone stretched.

    from tinct.restore import Restorer
    Restorer.load().restore("old.jpg")                      # scratches and grain, bundled damage model
    Restorer.load(steps="scratches,tone").restore(photo)    # some steps

``restorer`` holds the :class:`Restorer` (the pipeline), ``steps`` the image operations;
the synthetic damage it is trained and measured on is :mod:`tinct.degrade`'s. The command
line: ``tinct restore`` and ``tinct colorize --restore`` (docs/RESTORE.md).
"""

from .restorer import BUNDLED, DEFAULT_STEPS, STEPS, Restorer, RestoreError, grey_of, parse_steps, resolve_damage_model

__all__ = ["BUNDLED", "DEFAULT_STEPS", "STEPS", "Restorer", "RestoreError", "grey_of", "parse_steps", "resolve_damage_model"]
