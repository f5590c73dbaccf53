"""Models in and out: model folders, MONAI bundles, named and downloaded models, weights, networks, presets, export."""
