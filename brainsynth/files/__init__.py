"""Files brainsynth reads and writes: NIfTI with sidecars, atomic writes, output checks, tables, settings files."""
