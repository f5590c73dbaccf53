"""Solvers of the reverse diffusion process, one module each (see :mod:`.base` for the shape they share)."""
