"""Device choice and the known low-precision faults of cuDNN releases."""

import pytest
import torch

from brainsynth.devices import available_devices, low_precision_issues, resolve_device


def test_cpu_is_always_available_and_last():
    devices = available_devices()
    assert devices[-1] == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("precision", "cudnn", "torch_version", "expected"),
    [
        ("bfloat16", 91002, "2.8.0", ["pytorch/issues/163539"]),  # wrong values in 9.8 to 9.12
        ("bfloat16", 91300, "2.10.0", []),  # fixed in 9.13
        ("bfloat16", 91400, "2.9.1", ["pytorch/issues/166643"]),  # memory regression of torch 2.9 before 9.15
        ("bfloat16", 91000, "2.9.0", ["pytorch/issues/163539", "pytorch/issues/166643"]),
        ("bfloat16", 91501, "2.9.1", []),
        ("float16", 91002, "2.9.0", []),  # float16 is not affected
        ("float32", 91002, "2.9.0", []),
        ("bfloat16", 90701, "2.8.0", []),
    ],
)
def test_known_low_precision_issues_match_their_versions(precision, cudnn, torch_version, expected):
    issues = low_precision_issues(precision, cudnn_version=cudnn, torch_version=torch_version)
    assert len(issues) == len(expected)
    for issue, link in zip(issues, expected, strict=True):
        assert link in issue
        assert f"PyTorch {torch_version}" in issue
        assert "use precision 'float16' or 'float32'" in issue


def test_cudnn_version_is_written_as_people_read_it():
    (issue,) = low_precision_issues("bfloat16", cudnn_version=91002, torch_version="2.8.0")
    assert issue.startswith("cuDNN 9.10.2 with PyTorch 2.8.0: bfloat16 3D convolutions can return wrong values")
    assert "cuDNN 9.13.0 or later" in issue


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_nothing_to_report_without_cuda():
    assert low_precision_issues("bfloat16") == []


def _cpu_with_bfloat16(monkeypatch, native: bool) -> None:
    """Make this CPU look like one with (or without) AVX-512 BF16, its kernels unrestricted."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512" if native else "AVX2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)


@pytest.mark.parametrize(
    ("variable", "value", "native"),
    [
        ("ONEDNN_MAX_CPU_ISA", "AVX2", False),
        ("DNNL_MAX_CPU_ISA", "avx512_core", False),
        ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", True),
        ("ONEDNN_MAX_CPU_ISA", "all", True),
    ],
)
def test_kernels_limited_below_bfloat16_count_as_emulating_it(monkeypatch, variable, value, native):
    from brainsynth.devices import cpu_has_native_bfloat16

    _cpu_with_bfloat16(monkeypatch, True)
    assert cpu_has_native_bfloat16()
    monkeypatch.setenv(variable, value)
    assert cpu_has_native_bfloat16() is native
    monkeypatch.delenv(variable)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert not cpu_has_native_bfloat16()


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_only_on_cpus_that_compute_it_natively(monkeypatch, native):
    from brainsynth.devices import resolve_precision

    _cpu_with_bfloat16(monkeypatch, native)
    assert resolve_precision("auto", torch.device("cpu")) == ("bfloat16" if native else "float32")
    assert resolve_precision("auto", torch.device("cuda", 0)) == "float32"
    assert resolve_precision("float16", torch.device("cpu")) == "float16"  # explicit choices pass unchanged


def test_model_default_precision_is_used_and_recorded():
    from brainsynth.devices import cpu_has_native_bfloat16
    from tests.tiny import tiny_model

    result = tiny_model(default_precision="auto").sample(seed=0, steps=2, device="cpu")
    assert result.settings["precision"] == ("bfloat16" if cpu_has_native_bfloat16() else "float32")
    assert tiny_model().sample(seed=0, steps=2, device="cpu").settings["precision"] == "float32"
    explicit = tiny_model(default_precision="auto").sample(seed=0, steps=2, device="cpu", precision="float32")
    assert explicit.settings["precision"] == "float32"
