"""Covariates in real units and their mapping to the model's conditioning vector.

A model is conditioned on a vector ``c`` of covariates, each min-max normalised over its training set:
``c_i = (value_i - low_i) / (high_i - low_i)``, so that ``low`` maps to 0 and ``high`` to 1. A
:class:`CovariateSpec` records that mapping together with the name, unit and default a user sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Any

from brainsynth.errors import InvalidParameterError

#: Normalised bounds allowed when extrapolating beyond the training range. They match the
#: "unrestricted" range of the model authors' own demo (volumes -1..2 normalised).
EXTRAPOLATION_BOUNDS = (-1.0, 2.0)

CovariateValue = float | int | str


@dataclass(frozen=True)
class CovariateSpec:
    """One conditioning covariate of a model.

    Parameters
    ----------
    name : str
        Identifier used in the API and on the command line (``age``, ``ventricular_volume``).
    label : str
        Human-readable name (``"Ventricular volume"``).
    unit : str
        Unit of real values (``"years"``, ``"ml"``); empty for categorical covariates.
    low, high : float
        Real values that map to 0 and 1 in the conditioning vector (the training range).
    default : float or str or None
        Value used when the caller gives none; ``None`` makes the covariate required.
    choices : tuple of str
        For categorical covariates, the names of the categories; category ``i`` maps to ``i``
        before normalisation (``("female", "male")`` maps female to 0 and male to 1).
    description : str
        What the covariate measures and where its values come from.
    """

    name: str
    label: str
    unit: str
    low: float
    high: float
    default: float | str | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    @property
    def categorical(self) -> bool:
        """Whether the covariate takes one of :attr:`choices` rather than a number."""
        return bool(self.choices)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        data = asdict(self)
        data["choices"] = list(self.choices)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CovariateSpec:
        """Build a spec from :meth:`to_dict` output."""
        values = dict(data)
        values["choices"] = tuple(values.get("choices", ()))
        return cls(**values)

    def normalise(self, value: float) -> float:
        """Map a real value (or category index) to the normalised scale."""
        return (float(value) - self.low) / (self.high - self.low)

    def denormalise(self, normalised: float) -> float:
        """Map a normalised value back to real units."""
        return self.low + float(normalised) * (self.high - self.low)

    def describe_range(self) -> str:
        """Return the training range as text, e.g. ``"44 to 82 years"``."""
        if self.categorical:
            return " or ".join(self.choices)
        unit = f" {self.unit}" if self.unit else ""
        return f"{_fmt(self.low)} to {_fmt(self.high)}{unit}"


@dataclass(frozen=True)
class ResolvedCovariates:
    """Covariate values checked against their specs.

    Attributes
    ----------
    real : dict
        Values in real units, categorical ones by category name, in the model's order.
    normalised : tuple of float
        The conditioning vector, in the model's order.
    extrapolated : tuple of str
        Names of covariates outside their training range.
    """

    real: dict[str, CovariateValue]
    normalised: tuple[float, ...]
    extrapolated: tuple[str, ...]

    @property
    def normalised_by_name(self) -> dict[str, float]:
        """The conditioning vector as a name-to-value mapping."""
        return dict(zip(self.real, self.normalised, strict=True))


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.0f}"


def _resolve_categorical(spec: CovariateSpec, value: Any) -> tuple[str, float]:
    if isinstance(value, str):
        key = value.strip().lower()
        lowered = [c.lower() for c in spec.choices]
        if key in lowered:
            index = lowered.index(key)
            return spec.choices[index], float(index)
    elif isinstance(value, Real) and not isinstance(value, bool) and value in range(len(spec.choices)):
        return spec.choices[int(value)], float(value)
    allowed = ", ".join(f"'{c}' ({i})" for i, c in enumerate(spec.choices))
    raise InvalidParameterError(f"{spec.name} must be one of {allowed} (got {value!r})")


def _resolve_number(spec: CovariateSpec, value: Any, extrapolate: bool) -> tuple[float, bool]:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidParameterError(
            f"{spec.name} must be a number in {spec.unit or 'normalised units'} "
            f"(got {value!r} of type {type(value).__name__})"
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameterError(f"{spec.name} must be a finite number (got {number})")
    lo, hi = sorted((spec.low, spec.high))
    inside = lo <= number <= hi
    if inside:
        return number, False
    if not extrapolate:
        unit = f" {spec.unit}" if spec.unit else ""
        raise InvalidParameterError(
            f"{spec.name} must be between {_fmt(lo)} and {_fmt(hi)}{unit} (got {_fmt(number)}); "
            "pass extrapolate=True (--extrapolate) to go beyond the training range"
        )
    lo_x, hi_x = sorted(spec.denormalise(b) for b in EXTRAPOLATION_BOUNDS)
    if not lo_x <= number <= hi_x:
        unit = f" {spec.unit}" if spec.unit else ""
        raise InvalidParameterError(
            f"{spec.name} must be between {_fmt(lo_x)} and {_fmt(hi_x)}{unit} even when extrapolating "
            f"(normalised {EXTRAPOLATION_BOUNDS[0]:g} to {EXTRAPOLATION_BOUNDS[1]:g}; got {_fmt(number)})"
        )
    return number, True


def resolve_covariates(
    specs: Sequence[CovariateSpec],
    values: Mapping[str, Any],
    *,
    extrapolate: bool = False,
) -> ResolvedCovariates:
    """Check covariate values in real units and normalise them.

    Parameters
    ----------
    specs : sequence of CovariateSpec
        The model's covariates, in conditioning order.
    values : mapping
        Values by covariate name. Missing covariates (or None) take their default; a covariate without a
        default is required. Categorical covariates accept a category name or its index.
    extrapolate : bool
        Allow numeric values beyond the training range, up to the normalised bounds
        :data:`EXTRAPOLATION_BOUNDS`.

    Returns
    -------
    ResolvedCovariates

    Raises
    ------
    InvalidParameterError
        For an unknown or missing covariate, or a value of the wrong type, not finite or out of range.

    Examples
    --------
    >>> from brainsynth.loading.presets import UKB_COVARIATES
    >>> resolve_covariates(UKB_COVARIATES, {"sex": "male", "age": 63}).normalised[:2]
    (1.0, 0.5)
    """
    known = [s.name for s in specs]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidParameterError(
            f"unknown covariate {', '.join(map(repr, unknown))}; this model's covariates are {', '.join(known)}"
        )
    real: dict[str, CovariateValue] = {}
    normalised: list[float] = []
    extrapolated: list[str] = []
    for spec in specs:
        value = values.get(spec.name)
        if value is None:  # not given: the default
            value = spec.default
        if value is None:
            raise InvalidParameterError(
                f"covariate {spec.name} is required ({spec.describe_range()}) but was not given"
            )
        if spec.categorical:
            real[spec.name], position = _resolve_categorical(spec, value)
        else:
            position, outside = _resolve_number(spec, value, extrapolate)
            real[spec.name] = position
            if outside:
                extrapolated.append(spec.name)
        normalised.append(spec.normalise(position))
    return ResolvedCovariates(real=real, normalised=tuple(normalised), extrapolated=tuple(extrapolated))


def generic_covariates(count: int) -> tuple[CovariateSpec, ...]:
    """Specs for a model whose covariates are known only by position, in normalised units.

    Parameters
    ----------
    count : int
        Number of covariates in the conditioning vector.
    """
    return tuple(
        CovariateSpec(
            name=f"c{i}",
            label=f"Covariate {i}",
            unit="",
            low=0.0,
            high=1.0,
            default=None,
            description="Conditioning value in normalised units; its meaning is not recorded in the model.",
        )
        for i in range(count)
    )


def blend_covariates(
    specs: Sequence[CovariateSpec], a: ResolvedCovariates, b: ResolvedCovariates, t: float
) -> ResolvedCovariates:
    """Covariates a fraction ``t`` of the way from ``a`` to ``b``: numeric ones linearly in normalised
    units, categorical ones those of ``a`` below one half and of ``b`` from one half on."""
    real: dict[str, Any] = {}
    normalised = []
    for spec, (name, va), vb, na, nb in zip(
        specs, a.real.items(), b.real.values(), a.normalised, b.normalised, strict=True
    ):
        if spec.categorical:
            real[name], value = (va, na) if t < 0.5 else (vb, nb)
        else:
            value = (1.0 - t) * na + t * nb
            real[name] = spec.denormalise(value)
        normalised.append(value)
    extrapolated = tuple(dict.fromkeys((*a.extrapolated, *b.extrapolated)))
    return ResolvedCovariates(real=real, normalised=tuple(normalised), extrapolated=extrapolated)
