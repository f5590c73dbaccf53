"""Writes that never leave half a result: a brain and its sidecar together or not at all, no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from brainsynth.files import atomic
from brainsynth.files.nifti import sidecar_path

_HOLD_A_PART_FILE = """
import sys, time
from pathlib import Path
from brainsynth.files.atomic import _write_temporary
_write_temporary(Path(sys.argv[1]), b"half a brain")
print("written", flush=True)
time.sleep(600)
"""


def _start_writer(target):
    """A real process that has written a temporary file for ``target`` and is still running."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_PART_FILE, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "written"
    return process


def _parts(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_leftovers_of_a_killed_run_are_removed_by_the_next_write(model, tmp_path):
    target = tmp_path / "brain.nii.gz"
    killed, alive = _start_writer(target), _start_writer(target)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert len(_parts(tmp_path)) == 2
        model.sample(seed=1, steps=2).save(target)
        remaining = _parts(tmp_path)
        assert remaining == [p for p in remaining if f".{alive.pid}@" in p]  # the live writer's file is kept
        assert len(remaining) == 1
    finally:
        alive.kill()
        alive.wait()
    assert target.is_file()
    assert sidecar_path(target).is_file()


def test_brain_and_sidecar_appear_together_or_not_at_all(model, tmp_path, monkeypatch):
    """A fault after the image is in place but before its sidecar is (the last moment one can happen)."""
    result = model.sample(seed=1, steps=2)
    real_replace = os.replace

    def fail_on_the_sidecar(source, destination):
        if str(destination).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "replace", fail_on_the_sidecar)
    with pytest.raises(OSError, match="No space left"):
        result.save(tmp_path / "brain.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _tmpfs(folder, options):
    """Mount a real small tmpfs at ``folder`` (root only); skip the test where that is not possible."""
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {done.stderr.decode().strip()}")
    return folder


@pytest.fixture
def full_disk(tmp_path):
    """A real 64 KiB filesystem, nearly full: a tiny brain (16 KiB of float32 plus header) does not fit."""
    mount = _tmpfs(tmp_path / "small", "size=64k")
    (mount / "filler").write_bytes(b"\0" * 60_000)
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only filesystem (root ignores folder permissions, not a read-only mount)."""
    mount = _tmpfs(tmp_path / "read-only", "ro,size=64k")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_leaves_nothing(model, full_disk):
    result = model.sample(seed=1, steps=2)
    with pytest.raises(OSError, match="No space left on device"):
        result.save(full_disk / "brain.nii")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("in_the_way", ["brain.nii.gz", "brain.json"])
def test_a_folder_in_the_way_is_refused_before_any_compute(model_dir, tmp_path, capsys, monkeypatch, in_the_way):
    from brainsynth.cli import main

    (tmp_path / in_the_way).mkdir()

    def no_compute(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("brainsynth.cli.commands.load_model", no_compute)
    assert (
        main(
            [
                "sample",
                "--model",
                str(model_dir),
                "--steps",
                "2",
                "--output",
                str(tmp_path / "brain.nii.gz"),
                "--overwrite",
            ]
        )
        == 1
    )
    assert f"{in_the_way}' is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("clash", ["folder-with-a-brain", "output-is-a-file"])
def test_clashing_outputs_are_refused_before_any_compute(model_dir, tmp_path, capsys, monkeypatch, clash):
    from brainsynth.cli import main

    def no_compute(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("brainsynth.cli.commands.load_model", no_compute)
    if clash == "folder-with-a-brain":
        output = tmp_path / "brains"
        output.mkdir()
        (output / "brain_001.nii.gz").write_bytes(b"someone's brain")
        expected = "brain_001.nii.gz exists; pass overwrite=True"
    else:
        output = tmp_path / "notes.txt"
        output.write_text("keep me")
        expected = "notes.txt' is a file"
    assert main(["sample", "--model", str(model_dir), "--batch-size", "2", "--output", str(output)]) == 1
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sample", "generate", "cohort"])
def test_a_read_only_folder_is_refused_before_any_compute(model_dir, read_only_folder, capsys, command):
    from brainsynth.cli import main

    arguments = {
        "sample": ["sample", "--model", str(model_dir), "--output", str(read_only_folder / "brain.nii.gz")],
        "generate": ["generate", "--model", str(model_dir), "--n", "2", "--output", str(read_only_folder / "set")],
        "cohort": ["cohort", "--n", "2", "--spacing", "8", "--output", str(read_only_folder / "cohort")],
    }[command]
    assert main([*arguments, "--quiet"]) == 1
    error = capsys.readouterr().err.strip()
    assert "is not writable" in error
    assert len(error.splitlines()) == 1


def test_a_full_disk_is_one_line_from_the_command_line(model_dir, full_disk, capsys):
    from brainsynth.cli import main

    assert (
        main(["sample", "--model", str(model_dir), "--steps", "2", "--quiet", "--output", str(full_disk / "brain.nii")])
        == 1
    )
    error = capsys.readouterr().err.strip()
    assert f"cannot write or read {full_disk / 'brain.nii'}: No space left on device; no file was left" in error
    assert len(error.splitlines()) == 1
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_a_failed_save_into_a_new_folder_leaves_no_empty_folder(model, tmp_path, monkeypatch):
    result = model.sample(seed=1, steps=2, batch_size=2)

    def full_disk(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        result.save(tmp_path / "brains")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
