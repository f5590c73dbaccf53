"""Writing in background threads: bounded, ordered in effect, errors not lost, same files as serially."""

from __future__ import annotations

import threading

import pytest

from brainsynth import InvalidParameterError
from brainsynth.files.background import BackgroundWriter
from brainsynth.generate import generate_dataset


def test_a_full_queue_makes_the_caller_wait_and_everything_is_written():
    done, gate = [], threading.Event()

    def slow(index):
        gate.wait(5)
        done.append(index)

    with BackgroundWriter(workers=1, queue_size=2) as writer:
        for index in range(2):
            writer.submit(lambda index=index: slow(index))
        threading.Timer(0.3, gate.set).start()
        for index in range(2, 5):
            writer.submit(lambda index=index: slow(index))
        assert gate.is_set()  # the last submit could only return once the writer freed a place
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert writer.written == 5
    assert writer.waited_s >= 0.25


def test_a_failed_write_is_raised_and_not_lost():
    def fail():
        raise OSError("disk full")

    writer = BackgroundWriter(workers=2)
    writer.submit(fail)
    with pytest.raises(OSError, match="disk full"):
        writer.close()


def test_bad_settings_are_refused():
    with pytest.raises(InvalidParameterError, match=r"writers must be a whole number, 0 or more \(got -1\)"):
        BackgroundWriter(workers=-1)
    with pytest.raises(InvalidParameterError, match=r"queue_size must be a positive whole number \(got 0\)"):
        BackgroundWriter(queue_size=0)


def test_background_writing_gives_the_files_of_the_serial_loop(model, tmp_path):
    serial = generate_dataset(model, tmp_path / "serial", n=4, seed=3, steps=2, batch_size=2, writers=0)
    background = generate_dataset(model, tmp_path / "background", n=4, seed=3, steps=2, batch_size=2, writers=2)
    assert serial["written"] == background["written"] == 4
    names = sorted(p.name for p in (tmp_path / "serial").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "background").iterdir())
    for name in names:
        if name.endswith(".nii.gz"):
            assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "background" / name).read_bytes()


def test_generate_checks_writers_and_dtype_before_writing_anything(model, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"writers must be a whole number, 0 or more \(got 1.5\)"):
        generate_dataset(model, tmp_path / "out", n=1, writers=1.5)
    with pytest.raises(InvalidParameterError, match=r"NIfTI-1 has no float16; int16 keeps 16 bits\) \(got 'float16'\)"):
        generate_dataset(model, tmp_path / "out", n=1, dtype="float16")
    assert not (tmp_path / "out").exists()
