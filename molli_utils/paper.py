"""Numbers reported in Tran et al. (NeurIPS 2023), for side-by-side tables in the book.

Copied from the paper (Sec. 4.1, Tables 1, 2 and 4); the book always shows
them next to its own runs and says how the two differ.
"""

from __future__ import annotations

#: Sec. 4.1 (Fig. 4 and Fig. 6): MMD^2 between test and model samples. The paper states an RBF
#: kernel with lengthscale 1 and variance 1e-4; the absolute scale of its numbers is unclear.
TOY2D_MMD2 = {
    "mixture_of_gaussians": {"vanilla": 15.5, "mollification": 2.5},
    "von_mises": {"vanilla": 383.44, "mollification": 6.13},
}

#: Table 4: average test log-likelihood (nats, higher is better), mean and std over 4 seeds.
UCI_TEST_LOGLIK = {
    ("redwine", "maf"): {"vanilla": (-16.32, 1.88), "mollification": (-11.51, 0.44)},
    ("whitewine", "maf"): {"vanilla": (-14.87, 0.24), "mollification": (-11.96, 0.17)},
    ("parkinsons", "maf"): {"vanilla": (-8.27, 0.24), "mollification": (-6.17, 0.17)},
    ("miniboone", "maf"): {"vanilla": (-13.03, 0.04), "mollification": (-11.65, 0.09)},
    ("redwine", "realnvp"): {"vanilla": (-27.83, 2.56), "mollification": (-12.51, 0.40)},
    ("whitewine", "realnvp"): {"vanilla": (-18.34, 2.77), "mollification": (-12.30, 0.16)},
    ("parkinsons", "realnvp"): {"vanilla": (-14.21, 0.97), "mollification": (-7.74, 0.27)},
    ("miniboone", "realnvp"): {"vanilla": (-20.01, 0.22), "mollification": (-13.96, 0.12)},
    ("redwine", "glow"): {"vanilla": (-18.21, 1.14), "mollification": (-12.37, 0.33)},
    ("whitewine", "glow"): {"vanilla": (-15.24, 0.69), "mollification": (-12.44, 0.36)},
    ("parkinsons", "glow"): {"vanilla": (-8.29, 1.18), "mollification": (-6.90, 0.24)},
    ("miniboone", "glow"): {"vanilla": (-14.48, 0.10), "mollification": (-13.88, 0.08)},
}
