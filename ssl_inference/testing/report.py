"""The result of :func:`~ssl_inference.testing.check_representation`: one
:class:`CheckResult` per named check, gathered in a :class:`ConformanceReport`."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import RepresentationCheckError

__all__ = ["CheckResult", "ConformanceReport"]


@dataclass
class CheckResult:
    """Outcome of one named check: ``status`` is "passed", "failed" or "skipped"."""

    name: str
    status: str
    message: str = ""


@dataclass
class ConformanceReport:
    """Results of :func:`check_representation`, one :class:`CheckResult` per check.

    Examples
    --------
    >>> import numpy as np, ssl_inference as ssi
    >>> from ssl_inference.testing import check_representation
    >>> X_pre = np.random.default_rng(0).normal(size=(300, 3)) * [3.0, 2.0, 1.0]
    >>> report = check_representation(ssi.PCA(2), X_pre)
    >>> report.ok, len(report.passed) > 10
    (True, True)
    """

    representation: str
    results: list[CheckResult] = field(default_factory=list)

    def _names(self, status: str) -> list[str]:
        return [r.name for r in self.results if r.status == status]

    @property
    def passed(self) -> list[str]:
        return self._names("passed")

    @property
    def failed(self) -> list[str]:
        return self._names("failed")

    @property
    def skipped(self) -> list[str]:
        return self._names("skipped")

    @property
    def ok(self) -> bool:
        """Whether no check failed."""
        return not self.failed

    def __str__(self) -> str:
        lines = [f"Conformance of {self.representation}: {len(self.passed)} passed, "
                 f"{len(self.failed)} failed, {len(self.skipped)} skipped"]
        for r in self.results:
            lines.append(f"  [{r.status}] {r.name}" + (f": {r.message}" if r.message else ""))
        return "\n".join(lines)

    def raise_if_failed(self) -> "ConformanceReport":
        """Raise :class:`~ssl_inference.exceptions.RepresentationCheckError` listing the
        failing checks; return ``self`` when none failed."""
        if self.failed:
            details = "\n".join(f"* {r.name}: {r.message}" for r in self.results
                                if r.status == "failed")
            raise RepresentationCheckError(
                f"{self.representation} failed {len(self.failed)} of "
                f"{len(self.results) - len(self.skipped)} conformance checks:\n{details}",
                self)
        return self
