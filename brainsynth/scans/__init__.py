"""A subject's own scan in a model's space: loading, registration, resampling back, and editing it."""
