"""Running image runs: one (:func:`run`: train, then score), its results row (:func:`result_row`), and many
(:func:`run_many`: in worker processes or under ``torchrun``, each row appended as soon as its run ends)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

from ...data.images import DIGITS, ImageData
from ...fid import SCORE_FD_DIGITS, SCORE_FID, SCORE_STANDIN, digits_classifier
from ...models.image_flows import bits_per_dim
from ...runtime import pick_device
from ...training.distributed import Context, barrier
from .. import results, runner
from .config import ImageRun, held_out_data, key, load_data, profile_of, results_file, variance_cell
from .flows import run_flow
from .result import ImageResult
from .scoring import Scorer, make_scorer
from .vaes import run_vae

__all__ = ["run", "result_row", "run_many"]


def run(
    config: ImageRun,
    *,
    data: Optional[ImageData] = None,
    scorer: Optional[Scorer] = None,
    device: Union[str, torch.device] = "cpu",
    resume_root: Union[str, Path, None] = None,
    callback: Optional[Callable[[int, Any], None]] = None,
    progress: bool = False,
    test: Optional[ImageData] = None,
    dist: Any = None,
) -> ImageResult:
    """Train one run of Table 1 / Table 2 and score it; returns an :class:`ImageResult`.

    The data are mollified during the first ``config.fraction`` of the steps, then clean. ``data``
    defaults to :func:`load_data`; with a ``scorer`` the snapshot epochs and the end are scored
    (that time is not counted in ``train_seconds``); flows also get the test bits per dimension
    of ``test`` (default: the test split, where there is one). ``resume_root`` makes the run
    resumable (its folder: :func:`resume_dir`; the snapshots and losses of the epochs before an
    interruption are then not recorded again). ``callback(epoch, model)`` runs after every epoch;
    ``progress`` shows one bar. ``dist``: a :class:`~molli_utils.training.distributed.Context`
    of a ``torchrun`` launch (the flows train with DistributedDataParallel; the scores are
    computed on rank 0 only). VAEs: pythae keeps the model of the epoch with the best training
    loss; the returned ``model`` is the *current* (last) one, and ``config.precision`` "auto"
    trains in mixed precision on a GPU (:func:`~molli_utils.training.vae.resolve_precision`).
    """
    data = load_data(config) if data is None else data
    device = torch.device(device)
    dist = Context() if dist is None else dist
    runner = run_flow if config.family == "flow" else run_vae
    result = runner(config, data, scorer, device, resume_root, callback, progress, dist)
    result.world_size = dist.world_size
    if dist.main:
        start = time.perf_counter()
        if scorer is not None:
            scores = scorer.scores(result.model, config.n_score, seed=config.seed + 7)
            result.score_name, result.score, result.kid = scorer.name, scores["fd"], scores["kid"]
        if config.family == "flow" and config.dequantize:
            held_out = test if test is not None else held_out_data(config)
            if held_out is not None:
                result.bpd = bits_per_dim(result.model, held_out.images, held_out.levels, seed=config.seed + 11)
        result.score_seconds = time.perf_counter() - start
    return result


def result_row(result: ImageResult, data: ImageData) -> dict[str, Any]:
    """One row of ``images.csv`` (or, on the digits, ``images_digits.csv``) for a finished, scored run
    (the command adds the provenance)."""
    if result.score_name not in (SCORE_FID, SCORE_STANDIN, SCORE_FD_DIGITS):
        raise ValueError(f"the run has no score ({result.score_name!r}): pass a scorer to run()")
    c = result.config

    def num(value: float, digits: int = 4) -> Any:
        return "" if value is None or not math.isfinite(value) else round(float(value), digits)

    common = {
        "dataset": data.name,
        "model": c.model,
        "schedule": c.schedule_label,
        "seed": c.seed,
        "epochs": c.epochs,
        "steps": result.steps,
        "profile": profile_of(c),
        "device": result.device,
        "world_size": result.world_size,
        "seconds_per_step": round(result.seconds_per_step, 6),
        "arith": result.arith,
        "decoder_variance": variance_cell(c),
    }
    if data.name == DIGITS:
        return {
            **common,
            "family": c.family,
            "mode": c.mode,
            "tau": num(c.tau, 6) if c.tau is not None else "",
            "fd": num(result.score),
            "kid": num(result.kid, 6),
            "bpd": num(result.bpd),
            "n_score": c.n_score,
            "horizon": result.horizon,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "nonfinite_steps": result.skipped_steps,
            "train_seconds": round(result.train_seconds, 2),
            "score_seconds": round(result.score_seconds, 2),
        }
    return {
        **common,
        "mollifier": c.mode,
        "tau": c.tau if c.tau is not None else "",
        "variant": c.variant,
        "score_name": result.score_name,
        "score": round(float(result.score), 4),
        "bpd": num(result.bpd),
        "width": c.width,
        "precision": result.precision,
        "skipped_steps": result.skipped_steps,
    }


def _log_line(result: ImageResult, data: ImageData) -> str:
    c = result.config
    bpd = f", {result.bpd:.3f} bits/dim" if math.isfinite(result.bpd) else ""
    kid_ = f", KID {result.kid:.4f}" if math.isfinite(result.kid) else ""
    return (
        f"{data.name}/{c.model}/{c.mode}/{c.schedule_label}/seed {c.seed}: {result.score_name} {result.score:.3f}"
        f"{kid_}{bpd}; {result.steps} steps in {result.train_seconds:.0f} s ({1e3 * result.seconds_per_step:.1f} "
        f"ms/step, {result.precision}, {result.skipped_steps} skipped)"
    )


_WORKER: dict[str, Any] = {}


def _worker(config: ImageRun, use_fid: str, checkpoints: Optional[str], threads: int) -> tuple[dict, str]:
    """One run in a worker process of :func:`run_many` (the data and the scorer are built once per process)."""
    torch.set_num_threads(threads)
    if _WORKER.get("dataset") != config.dataset:
        data = load_data(config)
        _WORKER.update(
            dataset=config.dataset,
            data=data,
            test=held_out_data(config),
            scorer=make_scorer(data, "cpu", use_fid=use_fid, log=lambda s: None),
        )
    data = _WORKER["data"]
    result = run(config, data=data, scorer=_WORKER["scorer"], resume_root=checkpoints, test=_WORKER["test"])
    return result_row(result, data), _log_line(result, data)


def run_many(
    runs: Sequence[ImageRun],
    folder: Union[str, Path, None] = None,
    *,
    workers: int = 1,
    device: Union[str, torch.device, None] = None,
    checkpoints: Union[str, Path, None] = None,
    use_fid: str = "always",
    threads: int = 1,
    progress: bool = True,
    dist: Any = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run the ``runs`` (one data set) not yet recorded in ``folder`` (:func:`results_file` of their data set;
    folder: :func:`~molli_utils.experiments.results.results_dir`), appending each row with its provenance as
    soon as it finishes; returns the new rows.

    ``workers`` > 1: that many processes on the CPU (``threads`` torch threads each), one run per process at a
    time. ``dist``: a ``torchrun`` launch's :class:`~molli_utils.training.distributed.Context` (every rank
    runs the same list; rank 0 scores, writes and logs). ``use_fid`` as in :func:`make_scorer` (the digits
    always use their classifier).

    The runs are de-duplicated first. A run that raises is reported (its key and error) and the others go on;
    once all have ended, :class:`~molli_utils.experiments.cli.RunsFailed` is raised if any failed (every
    finished run is stored by then). Under ``torchrun`` an error stops every rank at once (the ranks run in
    lockstep). Ctrl-C (or SIGTERM under the command) terminates the workers; finished runs stay stored.
    """
    ctx = Context() if dist is None else dist
    runs = list(dict.fromkeys(runs))  # a run given twice is trained once
    if not runs:
        return []
    if len({r.dataset for r in runs}) > 1:
        raise ValueError("run_many takes the runs of one data set (they share its results file and its scorer)")
    say = log if ctx.main else (lambda s: None)
    out = results.results_dir(folder) / results_file(runs[0].dataset)
    if out.exists():
        results.append(out, [])  # a file of an older version (other columns) is refused here, with the fix
    runs, todo = runner.pending(runs, out, key)
    barrier(ctx)  # every rank has the same list before rank 0 appends to the file
    say(
        f"{len(runs) - len(todo)} of {len(runs)} image runs already in {out}; running {len(todo)}"
        + (f" on {workers} processes" if workers > 1 and todo else "")
    )
    if not todo:
        return []
    batch = runner.Batch(out, len(todo), key, say)

    def fail(i: int, config: ImageRun, err: BaseException) -> None:
        batch.fail(
            i, config, err, f"{config.dataset}/{config.model}/{config.mode}/{config.schedule_label}/seed {config.seed}"
        )

    if workers > 1:
        if ctx.distributed:
            raise ValueError("workers > 1 runs several one-process runs side by side; under torchrun use workers=1")
        if todo[0].dataset == DIGITS:
            digits_classifier(log=say)  # checked once here (a damaged file stops the batch before it starts)
        runner.in_pool(
            _worker,
            todo,
            (use_fid, None if checkpoints is None else str(checkpoints), threads),
            workers,
            lambda i, config, value: batch.store(i, *value),
            fail,
        )
    else:
        device = torch.device(pick_device() if device is None else device)
        data = load_data(todo[0])
        scorer = make_scorer(data, device, use_fid=use_fid, log=say) if ctx.main else None
        test = held_out_data(todo[0])
        for i, config in enumerate(todo, 1):
            try:
                result = run(
                    config,
                    data=data,
                    scorer=scorer,
                    device=device,
                    resume_root=checkpoints,
                    progress=progress,
                    test=test,
                    dist=ctx,
                )
            except Exception as err:
                if ctx.distributed:
                    raise
                fail(i, config, err)
                continue
            if ctx.main:
                batch.store(i, result_row(result, data), _log_line(result, data))
            barrier(ctx)
    say(f"{len(todo)} runs in {batch.elapsed():.0f} s wall" + (f" on {workers} processes" if workers > 1 else ""))
    return batch.finish()
