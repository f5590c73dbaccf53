"""Every refused input, through the command line or the API, as a user meets it: one line naming the
parameter, what is allowed and what was given, with nothing computed first and no file written.

The cases are also the page ``docs/bad-inputs.md`` (see :mod:`tests.bad_inputs`).
"""

from __future__ import annotations

import gzip
import os
import re

import nibabel as nib
import numpy as np
import pytest
import torch

import brainsynth
from brainsynth.loading.model_dir import save_model_dir
from tests.bad_inputs import CASES, DOCS_PAGE, Sandbox, api, case, cli, shown, table
from tests.bundles import write_layout
from tests.tiny import tiny_model

S = "--steps"


# --- sampling from the command line -------------------------------------------------------------------


def _sample(box: Sandbox, *extra: str) -> str:
    return cli(box, "sample", "--model", box.model(), S, "1", "--seed", "1", *extra)


SAMPLE_CASES = [
    ("zero steps", ("--steps", "0", "-o", "b.nii.gz"), r"steps must be"),
    ("steps that are not a number", ("--steps", "abc", "-o", "b.nii.gz"), r"--steps: invalid int value: 'abc'"),
    ("an age beyond the training range", ("--age", "200", "-o", "b.nii.gz"), r"age must be between .* \(got 200"),
    ("an age that is not a number", ("--age", "old", "-o", "b.nii.gz"), r"age"),
    ("an age that is NaN", ("--age", "nan", "-o", "b.nii.gz"), r"age must be a finite number"),
    (
        "an unknown sex",
        ("--sex", "other", "-o", "b.nii.gz"),
        r"sex must be one of 'female' \(0\), 'male' \(1\) \(got 'other'\)",
    ),
    ("a negative seed", ("--seed", "-1", "-o", "b.nii.gz"), r"seed must be"),
    ("a seed beyond 2**63-1", ("--seed", str(2**63), "-o", "b.nii.gz"), r"seed must be"),
    ("guidance below 1", ("--guidance", "0.5", "-o", "b.nii.gz"), r"guidance"),
    ("an unknown scheduler", ("--scheduler", "euler", "-o", "b.nii.gz"), r"--scheduler: invalid choice"),
    ("an unknown precision", ("--precision", "int8", "-o", "b.nii.gz"), r"--precision: invalid choice"),
    ("a device that is not here", ("--device", "cuda:7", "-o", "b.nii.gz"), r"cuda"),
    ("eta above 1", ("--eta", "2", "-o", "b.nii.gz"), r"eta must be"),
    ("an unknown timestep spacing", ("--timestep-spacing", "odd", "-o", "b.nii.gz"), r"--timestep-spacing"),
    ("batch size 0", ("--batch-size", "0", "-o", "b.nii.gz"), r"batch"),
    ("an output in a missing folder", ("-o", "missing/b.nii.gz"), r"folder 'missing' does not exist"),
    ("an empty output", ("-o", ""), r"path must name a file or folder \(got ''\)"),
    ("an output name of 300 characters", ("-o", "x" * 300 + ".nii.gz"), r"name of 307 bytes.*allow 255"),
    ("an output with terminal escapes", ("-o", "a\x1b[31m.nii.gz"), r"control characters.*\\x1b"),
    ("an unknown covariate in --set", ("--set", "height=3", "-o", "b.nii.gz"), r"height"),
]
for _what, _extra, _expected in SAMPLE_CASES:
    case("sample (command line)", _what, _expected)(lambda box, extra=_extra: _sample(box, *extra))


@case("sample (command line)", "an output that exists", r"exists; pass overwrite=True \(--overwrite\)")
def _(box):
    box.file("b.nii.gz", "old")
    return _sample(box, "-o", "b.nii.gz")


@case("sample (command line)", "an output inside a file", r"lies inside '.*afile', which is a file")
def _(box):
    box.file("afile", "x")
    return _sample(box, "-o", "afile/b.nii.gz")


@case("sample (command line)", "an output folder that is a file", r"is a file; give a \.nii/\.nii\.gz name or a folder")
def _(box):
    box.file("frames", "x")
    return _sample(box, "--batch-size", "2", "-o", "frames")


@case("sample (command line)", "a model that does not exist", r"model must be one of .* which does not exist")
def _(box):
    return cli(box, "sample", "--model", "nowhere/model", "-o", "b.nii.gz")


@case("sample (command line)", "a model path that is a file", r"model")
def _(box):
    return cli(box, "sample", "--model", box.file("model.json", "{}"), "-o", "b.nii.gz")


TRAVERSE_CASES = [
    ("traverse", ("--covariate", "height", "--values", "1,2"), r"covariate must be one of"),
    ("traverse", ("--covariate", "age", "--values", "50,abc"), r"age must be a number in years \(got 'abc'"),
    ("traverse", ("--covariate", "age", "--start", "50", "--stop", "80", "--frames", "1"), r"frames"),
    ("traverse", ("--covariate", "age"), r"values"),
    ("interpolate", ("--seed-a", "1", "--seed-b", "2", "--frames", "1"), r"frames"),
    ("interpolate", ("--seed-a", "-1", "--seed-b", "2"), r"seed"),
]
for _command, _extra, _expected in TRAVERSE_CASES:
    case(f"{_command} (command line)", " ".join(_extra), _expected)(
        lambda box, command=_command, extra=_extra: cli(
            box, command, "--model", box.model(), S, "1", *extra, "-o", "out.nii.gz"
        )
    )


# --- covariates tables for generate --------------------------------------------------------------------


def _generate(box: Sandbox, table_text: str | bytes | None, *extra: str, env=None) -> str:
    args = ["generate", "--model", box.model(), S, "1", "--quiet", "-o", "dataset"]
    if table_text is not None:
        args += ["--covariates", box.file("wanted.tsv", table_text)]
    return cli(box, *args, *extra, env=env)


TABLE_CASES = [
    ("a NUL character in an id", "id\tage\nab\x00c\t60\n", r"NUL character \(line 2\)"),
    ("an id of 300 characters", f"id\tage\n{'a' * 300}\t60\n", r"id must be a plain file name"),
    ("an id with terminal escapes", "id\tage\n\x1b[2Jx\t60\n", r"id must be a plain file name.*\\x1b"),
    ("an id that climbs out of the folder", "id\tage\n../../x\t60\n", r"id must be a plain file name"),
    ("an id ending in .nii.gz", "id\tage\nb.nii.gz\t60\n", r"without a \.nii or \.json ending"),
    ("a latin-1 table", "id\tage\nJos\xe9\t60\n".encode("latin-1"), r"not UTF-8 text \(line 2, byte 0xe9\)"),
    (
        "a row with fewer fields than the header",
        "id\tage\tsex\na\t60\n",
        r"line 2 has 2 field\(s\) but the header has 3",
    ),
    (
        "a row with more fields than the header",
        "id\tage\na\t60\tmale\n",
        r"line 2 has 3 field\(s\) but the header has 2",
    ),
    ("a duplicated column", "id\tage\tage\na\t60\t70\n", r"names column\(s\) age more than once"),
    ("a column without a name", "id\t\tage\na\t1\t60\n", r"column 2 of the header has no name"),
    ("an unknown column", "id\theight\na\t180\n", r"unknown column\(s\) 'height'"),
    ("both id and participant_id", "id\tparticipant_id\tage\na\tb\t60\n", r"both an id and a participant_id"),
    ("a seed of 1.7", "id\tseed\na\t1.7\n", r"row 1 of wanted.tsv: seed must be a whole number"),
    ("a negative seed", "id\tseed\na\t-4\n", r"seed must be between"),
    ("a repeated id", "id\tage\na\t60\na\t70\n", r"rows 1 and 2 repeat the id 'a'"),
    ("an age beyond the training range in row 2", "id\tage\na\t60\nb\t130\n", r"row 2 \(b\): age must be between"),
    ("an unknown sex", "id\tsex\na\tunknown\n", r"row 1 \(a\): sex must be one of"),
    ("an empty file", "", r"is empty; it needs a header line"),
    ("a quote left open", 'id\tage\n"a\t60\n', r"not a readable table"),
]
for _what, _text, _expected in TABLE_CASES:
    case("generate: covariates table", _what, _expected)(lambda box, text=_text: _generate(box, text))


@case("generate: covariates table", "a table that does not exist", r"covariates table .*missing.tsv does not exist")
def _(box):
    return cli(box, "generate", "--model", box.model(), "--covariates", "missing.tsv", "-o", "dataset")


GENERATE_CASES = [
    ("RANK that is not a number", ("--n", "2"), {"RANK": "abc", "WORLD_SIZE": "2"}, r"RANK must be a whole number"),
    ("RANK not below WORLD_SIZE", ("--n", "2"), {"RANK": "2", "WORLD_SIZE": "2"}, r"RANK must be from 0 to"),
    ("shard 3/2", ("--n", "2", "--shard", "3/2"), None, r"shard K/N needs whole numbers with 1 <= K <= N"),
    ("shard a/b", ("--n", "2", "--shard", "a/b"), None, r"shard must look like K/N"),
    ("n of 0", ("--n", "0"), None, r"give n \(a positive number of brains\)"),
]
for _what, _extra, _env, _expected in GENERATE_CASES:
    case("generate (command line)", _what, _expected)(
        lambda box, extra=_extra, env=_env: _generate(box, None, *extra, env=env)
    )


@case("generate (command line)", "an output that is a file", r"output 'dataset' is a file; give a folder")
def _(box):
    box.file("dataset", "x")
    return _generate(box, None, "--n", "1")


@case("generate (command line)", "an output folder made from another request", r"holds a dataset made from another")
def _(box):
    box.file("dataset/covariates.tsv", "id\tseed\tsex\tage\tventricular_volume\tbrain_volume\nother\t1\t\t\t\t\n")
    return _generate(box, None, "--n", "1")


# --- model folders --------------------------------------------------------------------------------------


def _load_edited(box: Sandbox, change) -> str:
    folder = box.model()
    box.edit_json(folder / "model.json", change)
    return api(box, brainsynth.load_model, folder)


def _config(change):
    return lambda manifest: change(manifest["config"])


MODEL_CASES = [
    ("format_version as a string", lambda m: m.update(format_version="1"), r"format_version must be an integer"),
    ("a newer format_version", lambda m: m.update(format_version=9), r"format version 9; .* upgrade brainsynth"),
    ("weights.file as a number", lambda m: m["weights"]["unet"].update(file=3), r"weights.unet.file must be a string"),
    ("sha256 as a number", lambda m: m["weights"]["unet"].update(sha256=3), r"sha256 must be 64 hexadecimal"),
    ("weights as a list", lambda m: m.update(weights=[]), r"weights must be an object \(got a list\)"),
    ("a weight file outside the folder", lambda m: m["weights"]["unet"].update(file="../x.safetensors"), r"not inside"),
    ("a wrong sha256", lambda m: m["weights"]["unet"].update(sha256="0" * 64), r"sha256"),
    ("no config", lambda m: m.pop("config"), r"config must be an object"),
    ("an unknown config field", _config(lambda c: c.update(colour="red")), r"unknown fields colour"),
    ("missing config fields", _config(lambda c: [c.pop(k) for k in ("unet", "affine")]), r"it lacks unet, affine"),
    ("latent_shape of ['a']", _config(lambda c: c.update(latent_shape=["a"])), r"latent_shape must be a list of 4"),
    ("a negative latent_shape", _config(lambda c: c.update(latent_shape=[3, -8, 8, 8])), r"from 1 to 2048"),
    ("a zero latent_shape", _config(lambda c: c.update(latent_shape=[3, 0, 8, 8])), r"from 1 to 2048"),
    (
        "a huge latent_shape",
        _config(lambda c: c.update(latent_shape=[3, 10**6, 8, 8], image_shape=[2 * 10**6, 16, 16])),
        r"latent_shape must hold integers from 1 to 2048 \(got \[3, 1000000",
    ),
    ("a fractional latent_shape", _config(lambda c: c.update(latent_shape=[3, 8.5, 8, 8])), r"from 1 to 2048"),
    ("in_channels as a string", _config(lambda c: c["unet"].update(in_channels="7")), r"unet.in_channels must be"),
    ("in_channels as true", _config(lambda c: c["unet"].update(in_channels=True)), r"unet.in_channels must be an int"),
    ("negative channels", _config(lambda c: c["unet"].update(channels=[-8, 16])), r"unet.channels\[0\] must be"),
    ("zero residual blocks", _config(lambda c: c["autoencoder"].update(num_res_blocks=0)), r"num_res_blocks"),
    ("an expression in a setting", _config(lambda c: c["unet"].update(channels="$[8, 16]")), r"unet.channels must be"),
    ("an unknown network setting", _config(lambda c: c["unet"].update(colour=1)), r"not valid for MONAI"),
    (
        "num_train_timesteps as a string",
        _config(lambda c: c["noise_schedule"].update(num_train_timesteps="1000")),
        r"num_train_timesteps must be an integer from 1 to 100000 \(got '1000'\)",
    ),
    (
        "an unknown schedule",
        _config(lambda c: c["noise_schedule"].update(schedule="exotic")),
        r"noise_schedule.schedule must be one of",
    ),
    ("a negative beta", _config(lambda c: c["noise_schedule"].update(beta_start=-1)), r"beta_start must be"),
    (
        "beta_start above beta_end",
        _config(lambda c: c["noise_schedule"].update(beta_start=0.5, beta_end=0.1)),
        r"beta_start <= beta_end",
    ),
    (
        "an unknown prediction type",
        _config(lambda c: c["noise_schedule"].update(prediction_type="x")),
        r"prediction_type",
    ),
    (
        "a covariate with low == high",
        _config(lambda c: c["covariates"][1].update(high=c["covariates"][1]["low"])),
        r"\(age\) needs low < high",
    ),
    (
        "a covariate bound of NaN",
        _config(lambda c: c["covariates"][1].update(low=float("nan"))),
        r"low must be a finite",
    ),
    ("a covariate name with spaces", _config(lambda c: c["covariates"][1].update(name="my age")), r"identifier"),
    ("repeated covariate names", _config(lambda c: c["covariates"][1].update(name="sex")), r"unique"),
    (
        "an affine with NaN",
        _config(lambda c: c["affine"][0].__setitem__(0, float("nan"))),
        r"affine must be a finite.*holds NaN",
    ),
    (
        "a singular affine",
        _config(lambda c: c.update(affine=[[0] * 4] * 3 + [[0, 0, 0, 1]])),
        r"invertible .*determinant 0",
    ),
    (
        "an affine's last row",
        _config(lambda c: c["affine"][3].__setitem__(0, 1.0)),
        r"its last row is 1 0 0 1, not 0 0 0 1",
    ),
    ("a 3 x 3 affine", _config(lambda c: c.update(affine=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])), r"4 x 4"),
    ("default_steps 0", _config(lambda c: c.update(default_steps=0)), r"default_steps must be an integer from 1"),
    ("an unknown default scheduler", _config(lambda c: c.update(default_scheduler="x")), r"default_scheduler must be"),
    ("scale_factor as a string", _config(lambda c: c.update(scale_factor="x")), r"scale_factor must be a finite"),
    ("null_condition of NaN", _config(lambda c: c.update(null_condition=float("nan"))), r"null_condition must be"),
    ("guidance without a null condition", _config(lambda c: c.update(default_guidance=3.0)), r"null_condition"),
    ("an image grid the autoencoder does not decode", _config(lambda c: c.update(image_shape=[9, 9, 9])), r"decodes"),
    ("U-Net channels that do not fit", _config(lambda c: c["unet"].update(in_channels=5)), r"in_channels is 5"),
    ("covariates as an object", _config(lambda c: c.update(covariates={})), r"covariates must be a list"),
]
for _what, _change, _expected in MODEL_CASES:
    case("model folder (model.json)", _what, _expected)(lambda box, change=_change: _load_edited(box, change))

RAW_MANIFESTS = [
    ("model.json that is not UTF-8", b'{"format": "\xff"}', r"not UTF-8 text \(line 1, byte 0xff\)"),
    ("model.json that is []", b"[]", r"must hold an object \(got a list\)"),
    ("model.json that is null", b"null", r"must hold an object \(got null\)"),
    ("model.json that is not JSON", b"{format", r"not JSON"),
    ("model.json of another format", b'{"format": "other"}', r"not a brainsynth model manifest"),
]
for _what, _raw, _expected in RAW_MANIFESTS:
    case("model folder (model.json)", _what, _expected)(
        lambda box, raw=_raw: api(box, brainsynth.load_model, box.file("model/model.json", raw).parent)
    )


@case("model folder (model.json)", "a damaged weight file", r"sha256|checksum")
def _(box):
    folder = box.model()
    weights = next(folder.glob("unet*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-10])
    return api(box, brainsynth.load_model, folder)


# --- MONAI bundles ---------------------------------------------------------------------------------------

INFERENCE = "configs/inference.json"


def _bundle_edited(box: Sandbox, file: str, change=None, raw: bytes | None = None) -> str:
    folder = box.bundle()
    if raw is not None:
        (folder / file).write_bytes(raw)
    elif file.endswith(".json"):
        box.edit_json(folder / file, change)
    else:
        import yaml

        data = yaml.safe_load((folder / file).read_text())
        change(data)
        (folder / file).write_text(yaml.safe_dump(data))
    return api(box, brainsynth.load_model, folder)


def _unet(change):
    return lambda c: change(c["diffusion_def"])


BUNDLE_CASES = [
    ("inference.json that is not UTF-8", INFERENCE, None, b'{"a": "\xff"}', r"not UTF-8 text"),
    ("inference.json that is []", INFERENCE, None, b"[]", r"must hold an object \(got a list\)"),
    ("inference.json that is null", INFERENCE, None, b"null", r"must hold an object \(got null\)"),
    ("large_files.yml that is not UTF-8", "large_files.yml", None, b"large_files: \xff", r"not UTF-8 text"),
    ("large_files.yml that is a list", "large_files.yml", None, b"[]", r"must hold an object \(got a list\)"),
    ("large_files.yml that is not YAML", "large_files.yml", None, b"a: [b", r"not YAML"),
    ("hash_val as a number", "large_files.yml", lambda m: m["large_files"][0].update(hash_val=12345), None, r"md5"),
    ("hash_val as a list", "large_files.yml", lambda m: m["large_files"][0].update(hash_val=[1]), None, r"md5"),
    ("large_files as an object", "large_files.yml", lambda m: m.update(large_files={}), None, r"must be a list"),
    ("a file path as a number", "large_files.yml", lambda m: m["large_files"][0].update(path=3), None, r"path must"),
    ("a wrong md5", "large_files.yml", lambda m: m["large_files"][0].update(hash_val="0" * 32), None, r"md5"),
    ("latent_shape of ['a']", INFERENCE, lambda c: (c.pop("noise"), c.update(latent_shape=["a"])), None, r"latent"),
    (
        "a noise shape of 10^6",
        INFERENCE,
        lambda c: c.update(noise="$torch.randn((1, 3, 1000000, 8, 8))"),
        None,
        r"2048",
    ),
    ("in_channels as a string", INFERENCE, _unet(lambda u: u.update(in_channels="7")), None, r"in_channels must be"),
    (
        "cross_attention_dim as a string",
        INFERENCE,
        _unet(lambda u: u.update(cross_attention_dim="4")),
        None,
        r"cross_attention_dim must be",
    ),
    (
        "num_train_timesteps as a string",
        INFERENCE,
        lambda c: c["scheduler"].update(num_train_timesteps="1000"),
        None,
        r"num_train_timesteps must be an integer",
    ),
    ("an unknown schedule", INFERENCE, lambda c: c["scheduler"].update(schedule="exotic"), None, r"schedule must be"),
    ("scale_factor as a string", INFERENCE, lambda c: c.update(scale_factor="x"), None, r"scale_factor must be"),
    ("an expression as a setting", INFERENCE, _unet(lambda u: u.update(channels="$[8]")), None, r"expression"),
    ("no U-Net section", INFERENCE, lambda c: c.pop("diffusion_def"), None, r"no 'diffusion_def' section"),
    (
        "a weight path outside the bundle",
        INFERENCE,
        lambda c: c.update(load_diffusion_path="$@model_dir + '/../../x.pt'"),
        None,
        r"outside",
    ),
]
for _what, _file, _change, _raw, _expected in BUNDLE_CASES:
    case("MONAI bundle", _what, _expected)(
        lambda box, file=_file, change=_change, raw=_raw: _bundle_edited(box, file, change, raw)
    )


@case("MONAI bundle", "a missing weight file", r"missing its unet weight file")
def _(box):
    folder = box.bundle()
    (folder / "models" / "model.pt").unlink()
    return api(box, brainsynth.load_model, folder)


# --- the napari reader and writer -----------------------------------------------------------------------


def _reader(box: Sandbox, path) -> str:
    from napari_plugin._io import read_nifti

    return api(box, read_nifti, str(path))


def _writer(box: Sandbox, data, attributes) -> str:
    from napari_plugin._io import write_nifti

    return api(box, write_nifti, str(box.folder / "out.nii.gz"), data, attributes)


@case("napari reader", "a truncated .nii.gz", r"is not a readable NIfTI image")
def _(box):
    raw = gzip.compress(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)).to_bytes())
    return _reader(box, box.file("cut.nii.gz", raw[: len(raw) // 2]))


@case("napari reader", "a file that is not NIfTI", r"is not a readable NIfTI image")
def _(box):
    return _reader(box, box.file("text.nii", "hello"))


@case("napari reader", "a 1D image", r"has 1 dimensions; 2 to 5 can be opened")
def _(box):
    path = box.folder / "line.nii"
    nib.save(nib.Nifti1Image(np.ones(8, np.float32), np.eye(4)), str(path))
    return _reader(box, path)


@case("napari reader", "a file that does not exist", r"does not exist")
def _(box):
    return _reader(box, box.folder / "gone.nii.gz")


@case("napari writer", "a 6D layer", r"layer has 6 dimensions")
def _(box):
    return _writer(box, np.zeros((2,) * 6, np.float32), {"affine": np.eye(7), "name": "six"})


@case("napari writer", "a 1D layer", r"layer has 1 dimensions")
def _(box):
    return _writer(box, np.zeros(4, np.float32), {"affine": np.eye(2), "name": "line"})


@case("napari writer", "a layer with a singular affine", r"affine is not finite and invertible")
def _(box):
    return _writer(box, np.zeros((4, 4, 4), np.float32), {"affine": np.diag([1.0, 0.0, 1.0, 1.0]), "name": "flat"})


@case("napari writer", "a layer with NaN in its scale", r"affine is not finite and invertible")
def _(box):
    attributes = {"affine": np.eye(4), "scale": (1.0, float("nan"), 1.0), "name": "nan"}
    return _writer(box, np.zeros((4, 4, 4), np.float32), attributes)


# --- training data, configurations, runs and checkpoints ------------------------------------------------


def _train(box: Sandbox, *extra: str, data=None, config: str = "tiny") -> str:
    data = box.cohort() if data is None else data
    return cli(box, "train", "autoencoder", "--data", data, "--config", config, "--device", "cpu", "-q", *extra)


def _participants(box: Sandbox, edit) -> str:
    data = box.cohort()
    path = data / "participants.tsv"
    path.write_bytes(edit(path.read_bytes()))
    return _train(box, "-o", "run", data=data)


def _first_image(data):
    return sorted(data.glob("sub-*/anat/*_T1w.nii.gz"))[0]


PARTICIPANT_CASES = [
    ("a missing column", lambda b: b.replace(b"\tage\t", b"\tyears\t", 1), r"lacks column\(s\) age; it has"),
    ("a repeated participant", lambda b: b + b.splitlines()[1] + b"\n", r"lines 2 and 8 both list participant"),
    ("a participant id that climbs out", lambda b: b.replace(b"sub-0001", b"../sub-0001", 1), r"plain name"),
    ("a participant without an image", lambda b: b.replace(b"sub-0001", b"sub-9999", 1), r"has no image"),
    ("an age that is not a number", lambda b: _replace_age(b, b"old"), r"not a number"),
    ("an age that is NaN", lambda b: _replace_age(b, b"nan"), r"not a finite number"),
    ("a latin-1 table", lambda b: b.replace(b"sub-0001", "sub-é".encode("latin-1"), 1), r"not UTF-8 text"),
    ("a short row", lambda b: b.rstrip(b"\n").rsplit(b"\t", 1)[0] + b"\n", r"field\(s\) but the header has"),
    ("no participants", lambda b: b.splitlines()[0] + b"\n", r"lists no participants"),
]


def _replace_age(table: bytes, value: bytes) -> bytes:
    lines = table.splitlines()
    header = lines[0].split(b"\t")
    row = lines[1].split(b"\t")
    row[header.index(b"age")] = value
    lines[1] = b"\t".join(row)
    return b"\n".join(lines) + b"\n"


for _what, _edit, _expected in PARTICIPANT_CASES:
    case("training data (participants.tsv)", _what, _expected)(lambda box, edit=_edit: _participants(box, edit))


@case("training data (participants.tsv)", "no participants.tsv", r"has no participants.tsv")
def _(box):
    data = box.cohort()
    (data / "participants.tsv").unlink()
    return _train(box, "-o", "run", data=data)


def _image_case(box: Sandbox, write) -> str:
    data = box.cohort()
    path = _first_image(data)
    write(path)
    return _train(box, "-o", "run", data=data)


def _save_image(data, affine=None):
    """A writer of an image with ``affine`` (default 8 mm, the cohort's); a NaN or singular one goes to the
    sform alone, as nibabel cannot make a qform of it."""
    affine = np.diag([8.0, 8.0, 8.0, 1.0]) if affine is None else np.asarray(affine, dtype=np.float64)

    def write(path):
        usable = np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) > 0
        image = nib.Nifti1Image(np.asarray(data, np.float32), affine if usable else None)
        if not usable:
            image.header.set_sform(affine, code=2)
            image.header.set_qform(None, code=0)
        nib.save(image, str(path))

    return write


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


IMAGE_CASES = [
    ("an image with no voxels", _save_image(np.zeros((0, 4, 4))), r"has no voxels"),
    ("a truncated .nii.gz", _truncate, r"cannot be read as an image|not a readable NIfTI"),
    ("an image with a NaN affine", _save_image(np.ones((4, 4, 4)), np.diag([np.nan, 1, 1, 1])), r"no usable"),
    ("an image with a singular affine", _save_image(np.ones((4, 4, 4)), np.diag([1.0, 0, 1, 1])), r"no usable"),
    ("a 4D image of 2 frames", _save_image(np.ones((4, 4, 4, 2))), r"is not a 3D image"),
    ("an image of NaN voxels", _save_image(np.full((8, 8, 8), np.nan)), r"not finite"),
    (
        "an image at a very different spacing",
        _save_image(np.ones((4, 4, 4)), np.eye(4)),
        r"very different voxel sizes",
    ),
    ("a file that is not NIfTI", lambda p: p.write_bytes(b"not an image"), r"not a readable NIfTI image"),
]
for _what, _write, _expected in IMAGE_CASES:
    case("training data (images)", _what, _expected)(lambda box, write=_write: _image_case(box, write))


def _config_file(box: Sandbox, raw: bytes) -> str:
    return _train(box, "-o", "run", config=str(box.file("config.json", raw)))


CONFIG_CASES = [
    ("a config that is not UTF-8", b'{"name": "\xff"}', r"not UTF-8 text"),
    ("a config that is not JSON", b"{name", r"not JSON"),
    ("a config that is a list", b"[]", r"must hold an object \(got a list\)"),
    ("an unknown section", b'{"optimiser": {}}', r"unknown sections \['optimiser'\]"),
]
for _what, _raw, _expected in CONFIG_CASES:
    case("training configuration", _what, _expected)(lambda box, raw=_raw: _config_file(box, raw))


def _config_changed(box: Sandbox, section: str, **changes) -> str:
    import json

    from brainsynth.training.settings import PRESETS_DIR

    config = json.loads((PRESETS_DIR / "tiny.json").read_text())
    config[section].update(changes)
    return _config_file(box, json.dumps(config).encode())


CONFIG_FIELD_CASES = [
    ("a grid shape of strings", "data", {"shape": ["a", 1, 1]}, r"data.shape must hold integers"),
    ("a spacing that is a string", "data", {"spacing": "x"}, r"data.spacing must be a finite number"),
    ("steps that are a string", "autoencoder", {"steps": "abc"}, r"autoencoder.steps must be an integer"),
    ("zero steps", "autoencoder", {"steps": 0}, r"autoencoder.steps must be at least 1"),
    ("an unknown setting", "autoencoder", {"colour": "red"}, r"unknown keys \['colour'\]"),
    ("network channels as a string", "autoencoder", {"network": {"channels": "x"}}, r"channels must be"),
    ("an unknown covariate set", "data", {"covariates": "other"}, r"covariates"),
    ("an unknown fine-tuning", "autoencoder", {"fine_tune": "encoder"}, r"fine_tune must be 'all' or 'decoder'"),
    (
        "decoder fine-tuning without --init-from",
        "autoencoder",
        {"fine_tune": "decoder"},
        r"fine_tune 'decoder' needs init_from \(--init-from\)",
    ),
    ("an unknown learning-rate schedule", "autoencoder", {"lr_schedule": "step"}, r"lr_schedule must be one of"),
    ("a negative MSE weight", "autoencoder", {"mse_weight": -1}, r"mse_weight must be at least 0 \(got -1\)"),
]
for _what, _section, _changes, _expected in CONFIG_FIELD_CASES:
    case("training configuration", _what, _expected)(
        lambda box, section=_section, changes=_changes: _config_changed(box, section, **changes)
    )


@case("training configuration", "an unknown preset", r"config must be a preset \(.*\) or a JSON file")
def _(box):
    return _train(box, "-o", "run", config="huge")


@case("training runs", "--init-from an autoencoder of other settings", r"init_from 'demo' cannot start this run")
def _(box):
    return _train(box, "-o", "run", "--init-from", "demo")


@case(
    "training runs",
    "--init-from an autoencoder with more residual blocks than the configuration",
    r"init_from 'demo' cannot start this run: autoencoder.network.num_res_blocks may add residual blocks .* not remove",
)
def _(box):
    import json

    from brainsynth.loading.names import load_model
    from brainsynth.training.settings import PRESETS_DIR

    config = json.loads((PRESETS_DIR / "tiny.json").read_text())
    config["data"].update({"spacing": 2.0, "shape": [80, 112, 80]})
    config["autoencoder"]["network"] = {**load_model("demo").config.autoencoder, "num_res_blocks": 1}
    path = box.file("config.json", json.dumps(config).encode())
    return _train(box, "-o", "run", "--init-from", "demo", config=str(path))


@case("training runs", "--init-from a folder that holds no model", r"init_from must be a trained autoencoder's folder")
def _(box):
    (box.folder / "empty").mkdir()
    return _train(box, "-o", "run", "--init-from", "empty")


@case("training runs", "--resume and --overwrite together", r"give either --resume or --overwrite, not both")
def _(box):
    return _train(box, "-o", "run", "--resume", "--overwrite")


@case("training runs", "--resume where nothing ran", r"cannot resume: .* holds no checkpoints")
def _(box):
    (box.folder / "run").mkdir()
    return _train(box, "-o", "run", "--resume")


@case("training runs", "an output that is a file", r"--output 'run' is a file; give a folder for the run")
def _(box):
    box.file("run", "x")
    return _train(box, "-o", "run")


@case("training runs", "an output that holds another run", r"already holds files")
def _(box):
    box.file("run/notes.txt", "mine")
    return _train(box, "-o", "run")


@case("training runs", "the data folder as the output", r"is the --data folder|input")
def _(box):
    data = box.cohort()
    return _train(box, "-o", data, "--overwrite", data=data)


def _checkpoint_case(box: Sandbox, change) -> str:
    run = box.copy("autoencoder")
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    return _train(box, "-o", run, "--resume")


CHECKPOINT_CASES = [
    ("a step that is a string", lambda s: s.update(step="abc"), r"its step must be a whole number \(got 'abc'\)"),
    ("no random states", lambda s: s.pop("rng"), r"lacks the random states"),
    ("no autoencoder weights", lambda s: s.pop("autoencoder"), r"is damaged: it lacks 'autoencoder'"),
    (
        "weights of another network",
        lambda s: s.update(autoencoder={"x": torch.zeros(1)}),
        r"holds autoencoder weights of another network",
    ),
    ("another task's checkpoint", lambda s: s.update(task="diffusion"), r"checkpoint of diffusion training"),
    ("another configuration's checkpoint", lambda s: s.update(config_hash="0" * 64), r"another configuration"),
]
for _what, _change, _expected in CHECKPOINT_CASES:
    case("training checkpoints (--resume)", _what, _expected)(lambda box, change=_change: _checkpoint_case(box, change))


@case("training checkpoints (--resume)", "a checkpoint that is not one", r"not a readable checkpoint")
def _(box):
    run = box.copy("autoencoder")
    (run / "checkpoints" / "last.pt").write_bytes(b"garbage")
    return _train(box, "-o", run, "--resume")


def _diffusion(box: Sandbox, autoencoder, *extra: str) -> str:
    data = box.cohort()
    return cli(
        box, "train", "diffusion", "--data", data, "--autoencoder", autoencoder, "--config", "tiny", "-q", *extra
    )


AUTOENCODER_MANIFEST_CASES = [
    ("autoencoder.json that is not JSON", b"{", r"not a readable autoencoder manifest: not JSON"),
    ("autoencoder.json without its grid", b'{"format": "brainsynth.autoencoder"}', r"network must be an object"),
]
for _what, _raw, _expected in AUTOENCODER_MANIFEST_CASES:

    @case("training runs (--autoencoder)", _what, _expected)
    def _(box, raw=_raw):
        run = box.copy("autoencoder")
        (run / "autoencoder.json").write_bytes(raw)
        return _diffusion(box, run, "-o", "model")


@case("training runs (--autoencoder)", "an autoencoder folder that holds none", r"holds no trained autoencoder")
def _(box):
    (box.folder / "empty").mkdir()
    return _diffusion(box, box.folder / "empty", "-o", "model")


# --- outputs of the other commands -----------------------------------------------------------------------


@case("outputs", "cohort --output that is a file", r"--output 'c' is a file; give a folder name")
def _(box):
    box.file("c", "x")
    return cli(box, "cohort", "--n", "2", "-o", "c")


@case("outputs", "cohort --output of 300 characters", r"name of 300 bytes")
def _(box):
    return cli(box, "cohort", "--n", "2", "-o", "c" * 300)


@case("outputs", "cohort --png in a missing folder", r"folder 'nowhere' does not exist")
def _(box):
    return cli(box, "cohort", "--n", "2", "-o", "c", "--png", "nowhere/c.png")


@case("outputs", "export --output that is a file", r"--output 'b' is a file; give a folder name")
def _(box):
    box.file("b", "x")
    return cli(box, "export", "--model", box.model(), "-o", "b")


@case("outputs", "export --output that holds other files", r"exists; pass overwrite=True")
def _(box):
    box.file("b/mine.txt", "x")
    return cli(box, "export", "--model", box.model(), "-o", "b")


@case("outputs", "evaluate --output that is a file", r"output 'r' is a file; give a folder for the report")
def _(box):
    box.file("r", "x")
    return cli(box, "evaluate", "--model", box.model(), "--n", "2", "-o", "r")


@case("outputs", "evaluate --output of an empty name", r"must name a file or folder")
def _(box):
    return cli(box, "evaluate", "--model", box.model(), "--n", "2", "-o", "")


@case("outputs", "download --dir that is a file", r"--dir: path .* lies inside|--dir")
def _(box):
    box.file("d", "x")
    return cli(box, "download", "ukb", "--dir", "d/ukb")


@case("serve (command line)", "a port out of range", r"--port must be a whole number from 1 to 65535 \(got 70000\)")
def _(box):
    return cli(box, "serve", "--port", "70000")


@case("serve (command line)", "a port in use", r"--port P is in use on 127.0.0.1")
def _(box):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        return cli(box, "serve", "--port", port).replace(port, "P")


@case("outputs", "explore --output that is not NIfTI (no display)", r"--output must end in \.nii or \.nii\.gz")
def _(box):
    return cli(box, "explore", "--model", box.model(), "-o", "brain.txt", env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})


@case("outputs", "explore --output with a NUL", r"control characters")
def _(box):
    return cli(box, "explore", "--model", box.model(), "-o", "a\x00.nii.gz")


# --- the memorisation audit ----------------------------------------------------------------------------


def _audit(box: Sandbox, *extra: str | os.PathLike) -> str:
    return cli(box, "audit", "--data", box.cohort(), "--quiet", *extra)


@case("audit", "a training folder that is empty", r"--data '.*' holds no NIfTI images .*: it is empty")
def _(box):
    (box.folder / "empty").mkdir()
    return cli(box, "audit", "--data", "empty", "--samples", box.cohort(), "-o", "report")


@case("audit", "a training folder without NIfTI", r"holds no NIfTI images .*: it holds 1 other files, such as 'a.txt'")
def _(box):
    box.file("notes/a.txt", "x")
    return cli(box, "audit", "--data", "notes", "--samples", box.cohort(), "-o", "report")


@case("audit", "no samples named", r"give the samples to audit: --samples DATASET_DIR, or --model M with --n N")
def _(box):
    return _audit(box, "-o", "report")


@case("audit", "--samples and --n together", r"either --samples DATASET_DIR or --n N")
def _(box):
    return _audit(box, "--samples", box.cohort(), "--n", "2", "--model", box.model(), "-o", "report")


@case("audit", "--n of 0", r"--n must be a positive whole number \(got 0\)")
def _(box):
    return _audit(box, "--model", box.model(), "--n", "0", "-o", "report")


@case("audit", "--n without a model", r"--n N draws samples from a model: give --model too")
def _(box):
    return _audit(box, "--n", "2", "-o", "report")


@case("audit", "the latent criterion without a model", r"the latent criterion needs a model's autoencoder")
def _(box):
    return _audit(box, "--samples", box.cohort(), "--criteria", "pixel,latent", "-o", "report")


@case("audit", "an unknown criterion", r"--criteria must be some of pixel, latent \(got pixel, ssim\)")
def _(box):
    return _audit(box, "--samples", box.cohort(), "--criteria", "pixel,ssim", "-o", "report")


@case("audit", "a false-positive rate of 0", r"--false-positive-rate must be a number above 0 and at most 0.5")
def _(box):
    return _audit(box, "--samples", box.cohort(), "--false-positive-rate", "0", "-o", "report")


@case("audit", "too few images to calibrate on", r"needs at least 19 real images unseen in training; --data holds 6")
def _(box):
    return _audit(box, "--samples", box.cohort(), "-o", "report")


@case("audit", "a report folder that exists", r"--output 'report' exists; an audit never replaces a report")
def _(box):
    box.file("report/report.md", "an earlier report")
    return _audit(box, "--samples", box.cohort(), "-o", "report")


@case("audit", "a samples folder that does not exist", r"--samples 'nowhere' does not exist")
def _(box):
    return _audit(box, "--samples", "nowhere", "-o", "report")


@case("audit", "a model whose autoencoder cannot encode", r"the latent criterion needs an autoencoder that encodes")
def _(box):
    from brainsynth.audit import audit

    model = tiny_model()
    model.autoencoder = torch.nn.Identity()  # a decoder alone, say
    return api(box, audit, box.cohort(), box.folder / "report", samples=box.cohort(), model=model)


# --- the Python API ---------------------------------------------------------------------------------------


def _model(box: Sandbox):
    return brainsynth.load_model(box.model())


@case("API", "model.sample(steps=0)", r"steps must be")
def _(box):
    return api(box, _model(box).sample, steps=0)


@case("API", "model.sample(seed=1.7)", r"seed must be an integer")
def _(box):
    return api(box, _model(box).sample, seed=1.7)


@case("API", "model.sample(age='old')", r"age")
def _(box):
    return api(box, _model(box).sample, {"age": "old"})


@case("API", "model.decode(z, precision='int8')", r"precision must be")
def _(box):
    return api(box, _model(box).decode, torch.zeros(1, 3, 8, 8, 8), precision="int8")


@case("API", "model.decode of latents of the wrong shape", r"latents must")
def _(box):
    return api(box, _model(box).decode, torch.zeros(1, 3, 4, 4, 4))


@case("API", "model.traverse over no values", r"values")
def _(box):
    return api(box, _model(box).traverse, "age", [])


@case("API", "evaluate_model with a device that is not here", r"cuda")
def _(box):
    from brainsynth.evaluation.report import evaluate_model

    return api(box, evaluate_model, _model(box), box.folder / "report", n=2, device="cuda:7")


@case("API", "evaluate_model with a segmenter of the wrong signature", r"must be a function taking \(volume, affine\)")
def _(box):
    from brainsynth.evaluation.report import evaluate_model

    return api(box, evaluate_model, _model(box), box.folder / "report", n=2, segmenter="json:dumps")


@case("API", "evaluate_model with a segmenter that does not exist", r"cannot be imported")
def _(box):
    from brainsynth.evaluation.report import evaluate_model

    return api(box, evaluate_model, _model(box), box.folder / "report", n=2, segmenter="nowhere.at_all:f")


@case("API", "load_scan of a file that is not a NIfTI", r"is not a readable NIfTI image")
def _(box):
    from brainsynth.scans.scan import load_scan

    (box.folder / "notes.nii.gz").write_text("not an image")
    return api(box, load_scan, box.folder / "notes.nii.gz", _model(box))


@case("API", "load_scan of a 4D image", r"must be a 3D image")
def _(box):
    from brainsynth.scans.scan import load_scan

    nib.save(nib.Nifti1Image(np.ones((16, 16, 16, 3), np.float32), np.eye(4)), box.folder / "series.nii.gz")
    return api(box, load_scan, box.folder / "series.nii.gz", _model(box))


@case("API", "load_scan with transform='elastic'", r"transform must be one of rigid, affine")
def _(box):
    from brainsynth.scans.scan import load_scan

    return api(box, load_scan, box.folder / "any.nii.gz", _model(box), transform="elastic")


@case("API", "load_scan with a reference array off the model's grid", r"reference must be a NIfTI path or an array on")
def _(box):
    from brainsynth.scans.scan import load_scan

    return api(box, load_scan, box.folder / "any.nii.gz", _model(box), reference=np.ones((5, 5, 5), np.float32))


@case(
    "API", "load_scan with a reference outside the model's world", r"reference .* is empty or not finite on the model's"
)
def _(box):
    from brainsynth.scans.scan import load_scan

    far = np.eye(4)
    far[:3, 3] = 5000.0
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((16, 16, 16), np.float32), far), box.folder / "far.nii.gz")
    return api(box, load_scan, box.folder / "any.nii.gz", _model(box), reference=box.folder / "far.nii.gz")


@case("API", "model.edit with strength 1.5", r"strength must be a number above 0 and at most 1")
def _(box):
    from brainsynth.scans.scan import Scan

    model = _model(box)
    scan = Scan.on_model_grid(np.zeros(model.config.image_shape, np.float32), model)
    return api(box, model.edit, scan, source={"sex": "female", "age": 60}, age=70, strength=1.5)


@case("API", "model.edit without the scan's own covariates", r"the scan's own sex, age must be given")
def _(box):
    from brainsynth.scans.scan import Scan

    model = _model(box)
    scan = Scan.on_model_grid(np.zeros(model.config.image_shape, np.float32), model)
    return api(box, model.edit, scan, age=70)


@case("API", "generate_dataset(shard=(3, 2))", r"shard K/N needs")
def _(box):
    from brainsynth.generate import generate_dataset

    return api(box, generate_dataset, _model(box), box.folder / "d", n=2, shard=(3, 2))


@case("API", "generate_dataset(seed=1.7)", r"seed must be an integer")
def _(box):
    from brainsynth.generate import generate_dataset

    return api(box, generate_dataset, _model(box), box.folder / "d", n=2, seed=1.7)


@case("API", "train_autoencoder with a TrainingConfig of 0 steps", r"autoencoder.steps must be at least 1")
def _(box):
    from dataclasses import replace

    from brainsynth.training import load_training_config, train_autoencoder

    config = load_training_config("tiny")
    config = replace(config, autoencoder=replace(config.autoencoder, steps=0))
    return api(box, train_autoencoder, box.cohort(), config, box.folder / "run", device="cpu", quiet=True)


@case("API", "train_autoencoder with a TrainingConfig of a string grid", r"data.shape must hold integers")
def _(box):
    from dataclasses import replace

    from brainsynth.training import load_training_config, train_autoencoder

    config = load_training_config("tiny")
    config = replace(config, data=replace(config.data, shape=("a", 1, 1)))
    return api(box, train_autoencoder, box.cohort(), config, box.folder / "run", device="cpu", quiet=True)


@case("API", "measure_volumes of an image without a brain", r"volume has no brain to measure")
def _(box):
    from brainsynth.evaluation.volumetry import measure_volumes

    return api(box, measure_volumes, np.zeros((16, 16, 16)), np.eye(4))


@case("API", "save_nifti of a file that exists", r"exists; pass overwrite=True")
def _(box):
    from brainsynth.files.nifti import save_nifti

    return api(box, save_nifti, np.zeros((2, 2, 2)), np.eye(4), box.file("b.nii", "x"))


# --- running the cases ------------------------------------------------------------------------------------

MESSAGES: dict[str, str] = {}


@pytest.fixture(scope="session")
def sources(tmp_path_factory, cohort_dir, trained_autoencoder, old_networks_session):
    folder = tmp_path_factory.mktemp("bad-input-sources")
    return {
        "model": save_model_dir(tiny_model(), folder / "model"),
        "bundle": write_layout(folder / "bundle", "model-zoo", *old_networks_session),
        "cohort": cohort_dir,
        "autoencoder": trained_autoencoder,
    }


@pytest.fixture(scope="session")
def old_networks_session():
    from tests.conftest import make_old_networks

    return make_old_networks()


def _message(item, sources, folder) -> str:
    box = Sandbox(folder, sources)
    message = item.run(box)
    assert re.search(item.expected, message), f"{item.id}: {message}"
    return shown(message, box)


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_before_any_work(item, sources, tmp_path):
    MESSAGES[item.id] = _message(item, sources, tmp_path)


def test_the_docs_page_lists_every_case_with_its_message(sources, tmp_path_factory):
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), "two cases share a description"
    assert len(CASES) >= 100
    for item in CASES:
        if item.id not in MESSAGES:  # the case was not run in this session (a -k selection)
            MESSAGES[item.id] = _message(item, sources, tmp_path_factory.mktemp("case"))
    page = table(MESSAGES)
    if os.environ.get("BRAINSYNTH_WRITE_BAD_INPUTS"):
        DOCS_PAGE.write_text(page)
    assert DOCS_PAGE.is_file(), "docs/bad-inputs.md is missing: run python -m tests.bad_inputs"
    assert DOCS_PAGE.read_text() == page, "docs/bad-inputs.md differs from the cases: run python -m tests.bad_inputs"
