"""Chapter 4's prose, checked: :func:`learned` computes the numbers of "What we learned" from the stored runs,
checks each finding (:class:`~molli_utils.findings.Findings`) and glues the numbers for the chapter's text."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...findings import Findings, glue_all
from ...paper import UCI_TEST_LOGLIK
from .. import NOISE
from .live import rounding_changes
from .names import DATASETS, FLOWS, MOL, SHORT, VARIANTS
from .stored import bf16_comparison, verdicts

__all__ = ["learned"]


def _listed(values: pd.Series) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in values.items())


def learned(
    runs: pd.DataFrame, curves: pd.DataFrame, code: pd.DataFrame, bf16: pd.DataFrame, rounding: pd.DataFrame
) -> dict[str, str]:
    """The numbers of chapter 4's "What we learned", from the stored runs: computed, checked and glued.

    ``runs`` = ``uci.csv``, ``curves`` = ``uci_curves.csv.gz``, ``code`` = ``uci_official_code.csv``,
    ``bf16`` = ``uci_bf16.csv``, ``rounding`` = ``uci_rounding.csv``. Every value is glued under its key
    (prefixed ``uci_``) as formatted text and returned. Raises ``AssertionError`` (from
    :meth:`~molli_utils.findings.Findings.check`) naming each finding of the prose that the numbers no
    longer support.
    """
    v = verdicts(runs)

    def means(variant: str, comparison: str, view: str) -> pd.Series:
        s = v[(v.variant == variant) & (v.comparison == comparison) & (v.view == view)]
        return s.set_index(["data set", "flow"])["mean"]

    g: dict[str, Any] = {}
    f = Findings()
    paper_gap = pd.Series({k: p["mollification"][0] - p["vanilla"][0] for k, p in UCI_TEST_LOGLIK.items()})

    # 1. the paper-text variant: better everywhere, by less than the paper
    pt_final = means("paper-text", MOL, "final")
    less = int((pt_final < paper_gap[pt_final.index]).sum())
    g.update(
        pt_better=(pt_final > 0).sum(),
        cells=len(pt_final),
        pt_less=less,
        pt_red_realnvp=f"{pt_final['redwine', 'realnvp']:+.2f}",
        paper_red_realnvp=f"{paper_gap['redwine', 'realnvp']:+.2f}",
    )
    f.add(
        "paper-text: mollification helps the final model everywhere, by less than the paper's gap in >= 7 cells",
        holds=bool((pt_final > 0).all()) and less >= 7,
    )

    # 2. early stopping, paper-text: vanilla wins on Parkinsons, the wines within 0.5 nats
    pt_early = means("paper-text", MOL, "early-stopped")
    park = pt_early.xs("parkinsons", level="data set")
    wine = pt_early.drop("parkinsons", level="data set")
    g.update(pt_park_early=", ".join(f"{k} {x:+.2f}" for k, x in park.items()), pt_wine_early=f"{wine.abs().max():.2f}")
    f.add(
        "paper-text, early-stopped: negative on Parkinsons for all flows, |Δ| < 0.5 on the wines",
        holds=bool((park < 0).all()) and wine.abs().max() < 0.5,
    )

    # 3. constant noise, paper-text
    pt_const = means("paper-text", "constant - vanilla", "final")
    share = (pt_const / pt_final).median()
    g.update(const_better=(pt_const > 0).sum(), const_share=f"{share:.0%}")
    f.add(
        "constant noise improves >= 8 cells and recovers over half the gain",
        holds=(pt_const > 0).sum() >= 8 and share > 0.5,
    )

    # 4. the official variant overfits as the paper's models did (red wine)
    final = runs[runs.dataset == "redwine"].groupby(["variant", "mode", "flow"]).test_loglik.mean()
    of_van = final["official", "vanilla"].reindex(list(FLOWS))
    pt_van = final["paper-text", "vanilla"].reindex(list(FLOWS))
    of_mol = final["official", "mollification"].reindex(list(FLOWS))
    paper_mol = pd.Series({fl: UCI_TEST_LOGLIK["redwine", fl]["mollification"][0] for fl in FLOWS})
    paper_sd = pd.Series({fl: UCI_TEST_LOGLIK["redwine", fl]["mollification"][1] for fl in FLOWS})
    g.update(
        of_red_vanilla=_listed(of_van),
        pt_red_vanilla=_listed(pt_van),
        of_seeds=runs[runs.variant == "official"].seed.nunique(),
        of_red_mol_off=f"{(of_mol - paper_mol).abs().max():.2f}",
        of_red_mol=_listed(of_mol),
        paper_red_mol=_listed(paper_mol),
    )
    f.add(
        "official, red wine: vanilla below paper-text for every flow; mollified within 2 paper sds of the paper",
        holds=bool((of_van < pt_van).all()) and bool(((of_mol - paper_mol).abs() < 2 * paper_sd).all()),
    )

    # 5. it follows the paper's own code
    from .. import uci_code_check

    check = uci_code_check(code, curves)
    early = check[check.epoch <= 40]
    worst = check.loc[check["diff"].abs().idxmax()]
    g.update(
        code_early=f"{early['diff'].abs().max():.2f}",
        code_worst_flow=worst["flow"],
        code_worst_epoch=int(worst["epoch"]),
        code_worst_diff=f"{worst['diff']:+.1f}",
        code_worst_p=f"{worst['p']:.2f}",
    )
    f.add(
        "the official variant agrees with the official code at all 12 checkpoints, within 0.7 nats to epoch 40",
        holds=bool(check.agrees.all()) and len(check) == 12 and early["diff"].abs().max() < 0.7,
    )

    # 6. the paper's numbers are the official variant's
    mean = runs.groupby(["variant", "mode", "dataset", "flow"])[["test_loglik", "test_loglik_best_val"]].mean()
    paper_mean = pd.Series(
        {
            (m, d, fl): p[m][0]
            for (d, fl), p in UCI_TEST_LOGLIK.items()
            for m in ("vanilla", "mollification")
            if d in DATASETS
        }
    )
    off = {var: (mean.test_loglik[var].reindex(paper_mean.index) - paper_mean).abs() for var in VARIANTS}
    closer = int((off["official"] < off["paper-text"]).sum())
    g.update(
        paper_cells=len(paper_mean),
        off_official=f"{off['official'].median():.2f}",
        off_paper_text=f"{off['paper-text'].median():.2f}",
        closer=closer,
    )
    f.add(
        "the official variant's means are closer to the paper's (median, and in most cells)",
        holds=off["official"].median() < off["paper-text"].median() and closer > len(paper_mean) / 2,
    )

    # 7. the official variant reproduces Table 4's final-model gains
    of_final = means("official", MOL, "final")
    of_paper = paper_gap[of_final.index]
    g.update(
        of_better=(of_final > 0).sum(),
        of_cells=len(of_final),
        of_half=(of_final >= of_paper / 2).sum(),
        of_ratio=f"{(of_final / of_paper).median():.2f}",
        of_white_realnvp=f"{of_final['whitewine', 'realnvp']:+.2f}",
        paper_white_realnvp=f"{of_paper['whitewine', 'realnvp']:+.2f}",
        of_park_maf=f"{of_final['parkinsons', 'maf']:+.2f}",
        paper_park_maf=f"{of_paper['parkinsons', 'maf']:+.2f}",
    )
    f.add(
        "official: mollification improves all 9 final models, by at least half the paper's gap in >= 7",
        holds=len(of_final) == 9 and bool((of_final > 0).all()) and (of_final >= of_paper / 2).sum() >= 7,
    )

    # 8. the gain follows the vanilla model's overfitting
    van, mol = mean.xs("vanilla", level="mode"), mean.xs("mollification", level="mode")
    gain = mol.test_loglik - van.test_loglik
    lost = van.test_loglik_best_val - van.test_loglik
    rho = gain.corr(lost, method="spearman")
    g.update(
        gain_cells=len(gain),
        rho=f"{rho:.2f}",
        lost_more=(lost["official"] > lost["paper-text"]).sum(),
        gains_more=(gain["official"] > gain["paper-text"]).sum(),
    )
    f.add(
        "the gain follows the vanilla overfitting (Spearman > 0.8 over 18 cells), official gains more in >= 6",
        holds=len(gain) == 18 and rho > 0.8 and (gain["official"] > gain["paper-text"]).sum() >= 6,
    )

    # 9. early stopping takes the official gain away
    of_early = means("official", MOL, "early-stopped")
    of_park = of_early.xs("parkinsons", level="data set")
    g.update(
        of_early_max=f"{of_early.max():+.2f}",
        of_early_lose=(of_early < 0).sum(),
        of_park_early=_listed(of_park),
        of_final_min=f"{of_final.min():+.2f}",
        of_final_max=f"{of_final.max():+.2f}",
    )
    f.add(
        "official, early-stopped: at most 0.5 nats of gain, a loss on Parkinsons for every flow",
        holds=of_early.max() < 0.5 and bool((of_park < 0).all()),
    )

    # 10. bf16 products move a run less than a seed does
    b = bf16_comparison(runs, bf16)
    v32, v16, moved, spread = b["v32"], b["v16"], b["moved"], b["spread"]
    same = v16["verdict"] == v32["verdict"]

    def told(vv: pd.DataFrame, k: tuple) -> str:
        m, sd, says = vv.loc[k, ["mean", "sd", "verdict"]]
        return f"{m:+.2f} ± {sd:.2f}, {says}"

    differ = "; ".join(
        f"{SHORT[k[0]]} {k[1]} {k[2]} ({told(v32, k)} in fp32, {told(v16, k)} in bf16)" for k in same[~same].index
    )
    signs = int((np.sign(v16["mean"]) == np.sign(v32["mean"])).sum())
    g.update(
        bf16_moved=f"{moved.loc['mollification', 'final']:.2f}",
        bf16_spread=f"{spread.loc['mollification', 'final']:.2f}",
        bf16_signs=signs,
        bf16_views=len(v32),
        bf16_same=int(same.sum()),
        bf16_differ=differ or "none",
    )
    f.add(
        "bf16: every mean gain keeps its sign, at most 2 verdicts change and only at the edge of seed noise, a run "
        "moves less than a quarter of the seeds' spread",
        holds=signs == len(v32)
        and same.sum() >= len(v32) - 2
        and all(NOISE in (v32.loc[k, "verdict"], v16.loc[k, "verdict"]) for k in same[~same].index)
        and moved.loc["mollification", "final"] < spread.loc["mollification", "final"] / 4,
    )

    # 11. rounding alone moves an overfitting run by nats
    by = rounding_changes(runs, rounding)
    (van_change, van_sd), (mol_change, mol_sd) = by["vanilla"], by["mollification"]
    g.update(
        round_van=f"{abs(van_change):.2f}",
        round_van_sd=f"{van_sd:.2f}",
        round_mol=f"{abs(mol_change):.2f}",
        round_mol_sd=f"{mol_sd:.2f}",
    )
    f.add(
        "rounding moves the vanilla run more than 10 times the mollified one, within two of its seeds' sds",
        holds=abs(van_change) > 10 * abs(mol_change) and abs(van_change) < 2 * van_sd,
    )

    f.check()
    return glue_all({f"uci_{k}": str(int(x)) if isinstance(x, (int, np.integer)) else str(x) for k, x in g.items()})
