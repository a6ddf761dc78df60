"""Reading runs: run dirs, their ``config.yaml``, scalar CSVs and ``provenance.json``, grouped
by task and variant; and the published anchors shipped beside the recipes."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from torchrl_psmbpo.recipes.config import flatten
from torchrl_psmbpo.recipes.provenance import commits

DEFAULT_ANCHORS = Path(__file__).resolve().parent.parent / "anchors"
"""The published anchors shipped with the package (``recipes/anchors/``: TD-MPC2's result files,
MIT, with their licence and a README)."""
ANCHOR_NAMES = {"sac": "SAC", "tdmpc2": "TD-MPC2", "dreamerv3": "DreamerV3"}


@dataclass
class Run:
    """One training run: where it is and the config fields the report groups by.

    Args:
        path: the run dir (holds ``config.yaml`` and ``logs/scalars/``).
        task: ``env.task`` of the config, e.g. ``"dmc:cartpole-swingup"``.
        variant: ``variant`` of the config (sac, mbpo, ps-mbpo, ops-mbpo, ps-mbpo-fixed).
        label: the group name: ``variant`` plus ``key=value`` of each ``--label-by`` key.
        seed: ``seed`` of the config.
        action_repeat: ``env.action_repeat`` (1 when missing); env steps = agent steps * it.
        config: the whole config as a plain dict.
        keys: the value of each ``--label-by`` key, under the name the label shows it by
            (``{"M": 2}`` for ``M=posterior.policies_per_model``).
    """

    path: Path
    task: str
    variant: str
    label: str
    seed: int
    action_repeat: int = 1
    config: dict = field(default_factory=dict, repr=False)
    keys: dict = field(default_factory=dict)

    def scalar(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Env steps and values of the scalar ``name`` (empty arrays when not logged)."""
        steps, values = read_scalar(self.path, name)
        return steps * self.action_repeat, values


def find_runs(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """Run dirs at or below ``paths``, and the dirs with logs but no ``config.yaml``.

    Hidden dirs (``.hydra``, ``.git``) are not searched; symlinked dirs are not followed.

    Raises:
        ValueError: a path does not exist.
    """
    runs: set[Path] = set()
    no_config: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise ValueError(f"{p} does not exist (give run dirs or dirs that contain them)")
        for dirpath, dirnames, filenames in os.walk(p):
            d = Path(dirpath)
            if (d / "logs" / "scalars").is_dir():
                (runs if "config.yaml" in filenames else no_config).add(d.resolve())
            dirnames[:] = [n for n in dirnames if not n.startswith(".") and n != "logs"]
    return sorted(runs), sorted(no_config)


LABEL_DIR = "dir"  # --label-by key: the name of the run dir's parent, e.g. mbpo-oracle/seed0


def load_run(path: str | os.PathLike, label_by: Sequence[str] = ()) -> Run:
    """Read ``<path>/config.yaml`` into a :class:`Run`.

    ``label_by`` keys are dotted config keys, or ``"dir"`` for the name of the directory that
    holds the run dir (``<task>/<name>/seed<k>/``: runs that differ in code, not in config); a
    key written ``NAME=key`` is shown as ``NAME=value`` (``M=posterior.policies_per_model``).

    ``env.task`` and ``env.action_repeat`` fall back to top-level ``task`` / ``action_repeat``
    (flat configs); ``action_repeat`` defaults to 1.

    Raises:
        ValueError: the config cannot be read or lacks ``variant``, ``seed`` or ``env.task``;
            the message names the file.
    """
    cfg_path = Path(path) / "config.yaml"
    try:
        cfg = _read_yaml(cfg_path)
    except Exception as exc:  # yaml syntax, OSError, ...: all mean "cannot read it"
        detail = " ".join(str(exc).split())  # yaml errors span lines: keep the message one line
        raise ValueError(
            f"cannot read run config {cfg_path}: {type(exc).__name__}: {detail}"
        ) from None
    if not isinstance(cfg, dict):
        raise ValueError(
            f"cannot read run config {cfg_path}: expected a mapping, got {type(cfg).__name__}"
        )

    def get(key: str, *fallbacks: str):
        for k in (key, *fallbacks):
            node = cfg
            for part in k.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return node
        return None

    task = get("env.task", "task")
    found = {"variant": get("variant"), "seed": get("seed"), "env.task": task}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise ValueError(f"run config {cfg_path} lacks {', '.join(missing)}")
    repeat = get("env.action_repeat", "action_repeat")
    try:
        seed = int(get("seed"))
        repeat = 1 if repeat is None else int(repeat)
    except (TypeError, ValueError):
        raise ValueError(
            f"run config {cfg_path}: seed and env.action_repeat must be integers"
        ) from None
    if repeat < 1:
        raise ValueError(f"run config {cfg_path}: env.action_repeat must be >= 1, got {repeat}")
    variant = str(get("variant"))
    holder = Path(path).resolve().parent.name
    shown = (entry.rpartition("=")[::2] for entry in label_by)  # NAME=key -> (NAME, key)
    keys = {name or k: holder if k == LABEL_DIR else get(k) for name, k in shown}
    label = " ".join([variant] + [f"{name}={value}" for name, value in keys.items()])
    return Run(Path(path), str(task), variant, label, seed, repeat, cfg, keys)


def _read_yaml(path: Path):
    """The YAML file as plain containers: omegaconf (interpolations resolved where they can be),
    else PyYAML."""
    try:
        from omegaconf import OmegaConf
    except ImportError:
        import yaml

        with open(path) as fh:
            return yaml.safe_load(fh)
    cfg = OmegaConf.load(path)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # e.g. ${hydra:...} outside a Hydra app: keep the raw strings
        return OmegaConf.to_container(cfg, resolve=False)


def read_scalar(run_dir: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Agent steps and values of ``logs/scalars/<name>.csv`` (rows ``step,value``, no header).

    A step logged twice (a resumed run appends) keeps its last value. A malformed last line is
    skipped (a running job may be writing it); a malformed earlier line is an error.

    Raises:
        ValueError: a malformed line other than the last; the message names file and line.
    """
    path = Path(run_dir) / "logs" / "scalars" / f"{name}.csv"
    if not path.is_file():
        return np.empty(0), np.empty(0)
    lines = path.read_text().splitlines()
    by_step: dict[int, float] = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            step, value = line.split(",")
            by_step[int(float(step))] = float(value)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: expected 'step,value', got {line!r}") from None
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


ORDER = ("sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed")
"""The paper's order of the variants in tables and legends; any other label after them."""


def _variant_key(label: str) -> tuple:
    base = label.split(" ")[0]
    return (ORDER.index(base) if base in ORDER else len(ORDER), label)


def group_runs(runs: Sequence[Run]) -> dict[str, dict[str, list[Run]]]:
    """``{task: {label: [runs sorted by seed]}}``, labels in the order sac, mbpo, ps-mbpo, ....

    Raises:
        ValueError: two runs share task, label and seed (the message lists config keys that
            differ between them, to pass to ``--label-by``).
    """
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault(run.task, {}).setdefault(run.label, []).append(run)
    for task, by_label in groups.items():
        for label, members in by_label.items():
            members.sort(key=lambda r: r.seed)
            for a, b in zip(members, members[1:]):
                if a.seed == b.seed:
                    diff = _differing_keys(a.config, b.config)
                    hint = (f"keys that differ: {', '.join(diff[:5])} (use --label-by)" if diff
                            else "same config: pass only one of them")
                    raise ValueError(
                        f"two runs of {task} {label} with seed {a.seed}: {a.path} and {b.path}; "
                        + hint
                    )
        groups[task] = dict(sorted(by_label.items(), key=lambda kv: _variant_key(kv[0])))
    return dict(sorted(groups.items()))


def _differing_keys(a: dict, b: dict) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    skip = re.compile(r"(^|\.)(run_dir|resume|output_dir|dir|hydra)($|\.)")
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and not skip.search(k))


def member_curves(run: Run) -> list[tuple[np.ndarray, np.ndarray]]:
    """``eval/return_member<i>`` of every member ``i`` (runs with ``eval.all_members=true``),
    in member order (a member with no rows yet: empty arrays); empty when the run did not
    log them."""
    found = (run.path / "logs" / "scalars" / "eval").glob("return_member*.csv")
    index = sorted(int(f.stem[len("return_member"):]) for f in found
                   if f.stem[len("return_member"):].isdigit())
    return [run.scalar(f"eval/return_member{i}") for i in index]


def run_code(run: Run) -> str:
    """The code that made a run: its commit(s) from ``provenance.json`` (``+dirty`` for a tree
    with uncommitted changes, several joined by ``then`` for a run resumed by other code), or
    ``"not recorded"``."""
    found = commits(run.path)
    return " then ".join(c or "not a git checkout" for c in found) if found else "not recorded"


def unclean(code: str) -> bool:
    """Whether a run's :func:`run_code` is one a comparison cannot vouch for: not recorded, a
    dirty tree, or resumed by other code.

    Examples:
        >>> unclean("917977c40fd9"), unclean("917977c40fd9+dirty"), unclean("not recorded")
        (False, True, True)
    """
    return code == "not recorded" or "+dirty" in code or " then " in code


def check_same_commit(task: str, by_label: Mapping[str, Sequence[Run]]) -> None:
    """Raise ``ValueError`` naming the runs unless every run of ``task`` was made by one commit of
    clean code."""
    codes: dict[str, list[str]] = {}
    for runs in by_label.values():
        for run in runs:
            codes.setdefault(run_code(run), []).append(str(run.path))
    bad = {c: p for c, p in codes.items() if unclean(c)}
    if len(codes) > 1 or bad:
        shown = "; ".join(f"{c}: {len(p)} run(s), e.g. {p[0]}" for c, p in sorted(codes.items()))
        raise ValueError(f"--same-commit: the runs of {task} do not come from one commit of clean "
                         f"code ({shown})")


def load_anchors(anchors: Path | None, task: str, column: str) -> dict[str, dict[int, np.ndarray]]:
    """Published reference results for ``task``: ``{algorithm: {env step: per-seed values}}``.

    Reads ``<anchors>/tdmpc2_results/<algorithm>_<name>.csv`` (or ``<anchors>/<...>.csv``)
    with columns ``step,<column>,seed``; ``<name>`` is ``cartpole-swingup`` for
    ``dmc:cartpole-swingup``, ``cartpole-swingup-sparse`` for ``dmc:cartpole-swingup_sparse``
    (TD-MPC2 writes dm_control's underscores as hyphens) and ``mw-window-open`` for
    ``metaworld:window-open-v3``. Missing dir or file: no anchors.
    """
    if anchors is None:
        return {}
    folder = anchors / "tdmpc2_results" if (anchors / "tdmpc2_results").is_dir() else anchors
    suite, _, name = task.partition(":")
    if suite == "dmc":
        stem = name.replace("_", "-")
    elif suite == "metaworld":
        stem = "mw-" + re.sub(r"-v\d+$", "", name)
    else:
        return {}
    out: dict[str, dict[int, np.ndarray]] = {}
    for path in sorted(folder.glob(f"*_{stem}.csv")) if folder.is_dir() else []:
        algo = path.name[: -len(f"_{stem}.csv")]
        if "_" in algo:  # "<algorithm>_<name>.csv" only
            continue
        with open(path) as fh:
            rows = list(csv.DictReader(fh))
        if not rows or column not in rows[0]:
            continue
        by_step: dict[int, list[float]] = {}
        for row in rows:
            by_step.setdefault(int(float(row["step"])), []).append(float(row[column]))
        out[algo] = {s: np.array(v) for s, v in sorted(by_step.items())}
    return out

