"""napari face of brainsynth.

A thin layer of napari widgets over :mod:`brainsynth`; the core package never imports Qt or napari.
"""
