"""How the studies' files and tables name a control: a grid of step counts
(`StepsAxis`) or a list of tolerances (`TolerancesAxis`); `axis` picks the one of a
control, so that no study decides between them again."""

import abc
from typing import cast

import odeness


class Axis(abc.ABC):
    """How a sweep's files and tables name its grid, and an adapted run its final control.

    Its names: the grid in a title (`what`: `step counts`), a training value in a label
    (`symbol`: `n`), what is critical (`quantity`: `step size`), the grid's key in
    `sweep.json` (`key`: `steps`), how a factor makes a test configuration
    (`factor_rule`), the main table's first columns (`head`), the figure's x axis
    (`x_label`, on a log scale of `x_base`), `summary.json`'s `fixed`, an adapted run's
    value in `metrics.jsonl` (`rule_value`: `dt`, `tol`), the critical value's key in
    `critical_step.json` and its symbol (`star_key`, `star_symbol`), and the format of a
    final value in Table 1 (`brief`). `final`: an adapted run's final control in its
    summary, `(key, column, format of a seed, format of the mean over seeds)` for each
    number (of `numbers`); `saved`: the numbers of a training (`train`) and a test
    (`test`) control in `results.jsonl`.
    """

    what: str
    symbol: str
    quantity: str
    key: str
    factor_rule: str
    head: list[str]
    x_label: str
    x_base: int
    fixed: bool
    rule_value: str
    star_key: str
    star_symbol: str
    brief: str
    final: tuple[tuple[str, str, str, str], ...]
    saved: dict[str, tuple[str, ...]]

    @abc.abstractmethod
    def value(self, control: odeness.AbstractControl) -> float:
        """The number a grid value is keyed and sorted by: a step count, a tolerance."""

    @abc.abstractmethod
    def control(self, value: float) -> odeness.AbstractControl:
        """The grid value of `value` (the inverse of `value`)."""

    @abc.abstractmethod
    def read(self, row: dict, prefix: str) -> odeness.AbstractControl:
        """The control of a `results.jsonl` row's training or test setting."""

    @abc.abstractmethod
    def stars(self, gaps: dict, threshold: float) -> tuple[dict, str]:
        """The critical values by key (None where no value is critical), and the first
        in words (empty where none)."""

    @abc.abstractmethod
    def words(self, control: odeness.AbstractControl) -> str:
        """A control in a sentence: `8 steps`, `rtol 0.001, atol 0.001`."""

    def critical(self, gaps: dict, threshold: float) -> tuple[dict, str]:
        """`critical_step.json`'s content and the summary's verdict, from the max gaps
        of each training value's seeds (`gaps`)."""
        stars, words = self.stars(gaps, threshold)
        s = self.star_symbol
        verdict = (
            f"{s}* = {words}: every model trained with {s} ≤ {s}* keeps its accuracy "
            "under more accurate solvers"
            if words
            else f"no training {self.quantity} kept its accuracy"
        )
        return {"threshold": threshold, **stars}, verdict

    def numbers(self, control: odeness.AbstractControl, length: float = 1.0) -> dict:
        """A control's numbers by name: `steps` and `dt`, or `rtol`, `atol` and `tol`."""
        return control.to_json(length)

    def columns(self, prefix: str, setting: odeness.Setting) -> dict:
        """`results.jsonl`'s columns of a training (`prefix` `train`) or test setting."""
        numbers = self.numbers(setting.control, setting.length)
        return {f"{prefix}_{name}": numbers[name] for name in self.saved[prefix]}

    def final_values(self, control: odeness.AbstractControl) -> dict[str, float]:
        """An adapted run's final control as `summary.json` holds it."""
        numbers = self.numbers(control)
        return {key: numbers[key] for key, *_ in self.final}

    def cell(self, value: float) -> str:
        return f"{value:g}"

    def cells(self, value: float) -> list[str]:
        """The main table's first cells (`head`) of a training value."""
        return [self.cell(value)]

    def star_cell(self, value: float) -> str:
        """The critical grid value in a table: `1/64`, `0.001`."""
        return self.cell(value)

    def order(self, values) -> list[float]:
        """Coarse to fine."""
        return sorted(values, key=lambda v: -self.control(v).size())


class StepsAxis(Axis):
    what, symbol, quantity, key = "step counts", "n", "step size", "steps"
    factor_rule = "steps = round(factor × n)"
    head = ["training n", "h"]
    x_label, x_base, fixed, rule_value = "test steps", 2, True, "dt"
    star_key, star_symbol, brief = "steps_star", "h", ".3g"
    final = (("dt", "final h", ".4g", ".4g"), ("steps", "steps", "d", ".1f"))
    saved = {"train": ("steps", "dt"), "test": ("steps",)}

    def value(self, control):
        return cast(odeness.AbstractGrid, control).num_steps()

    def control(self, value):
        return odeness.Steps(int(value))

    def read(self, row, prefix):
        return odeness.Steps(row[f"{prefix}_steps"])

    def words(self, control):
        return control.label()

    def cell(self, value):
        return str(value)

    def cells(self, value):
        return [str(value), f"{1 / value:.4g}"]

    def star_cell(self, value):
        return f"1/{value}"

    def stars(self, gaps, threshold):
        h = odeness.critical_step_size({1 / t: g for t, g in gaps.items()}, threshold)
        n = None if h is None else round(1 / h)
        words = "" if h is None else f"{h:.4g} (n = {n} steps)"
        return {"h_star": h, "steps_star": n}, words


class TolerancesAxis(Axis):
    what, symbol, quantity, key = "tolerances", "tol", "tolerance", "tols"
    factor_rule = "tol × factor"
    head = ["training tol"]
    x_label, x_base, fixed, rule_value = "test tolerance", 10, False, "tol"
    star_key, star_symbol, brief = "tol_star", "tol", ".2g"
    final = (("tol", "final tol", ".3g", ".3g"),)
    saved = {"train": ("tol",), "test": ("rtol", "atol")}

    def value(self, control):
        return control.size()

    def control(self, value):
        return odeness.Tolerances(value)

    def read(self, row, prefix):
        return odeness.Tolerances(*(row[f"{prefix}_{k}"] for k in self.saved[prefix]))

    def words(self, control):
        return "rtol {rtol:g}, atol {atol:g}".format(**control.to_json())

    def numbers(self, control, length=1.0):
        return {**control.to_json(length), "tol": control.size()}

    def stars(self, gaps, threshold):
        tol = odeness.critical_tolerance(gaps, threshold)
        return {"tol_star": tol}, "" if tol is None else f"{tol:g}"


def of_spec(spec: dict) -> Axis:
    """The axis of a sweep's `sweep.json`."""
    return StepsAxis() if spec["steps"] is not None else TolerancesAxis()


def axis(control: odeness.AbstractControl) -> Axis:
    """The axis of a grid of `control`'s kind."""
    return StepsAxis() if isinstance(control, odeness.AbstractGrid) else TolerancesAxis()
