"""Sampling: the denoising loop, its solvers and timesteps, the noise, decoding and stepping."""
