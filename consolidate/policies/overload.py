"""Host overload detection (the Beloglazov-Buyya family CloudSim implements): pure functions of host
utilisation and its history.

A history is the host's utilisation over past scheduling intervals, computed from the VMs it holds now
(as CloudSim does), most recent LAST, shape (hosts, length); NaN where there is no sample (no VM on the host
has one yet): a missing sample is never read as a zero. Each adaptive detector also registers CloudSim 3.0.3's
own arithmetic (`cloudsim=`), which cloudsim_compat runs instead (docs/consolidation.md).
"""
from __future__ import annotations

import numpy as np

from consolidate.policies.registry import Param, detector

FALLBACK_THRESHOLD = 0.7  # static threshold the adaptive detectors use until a host has enough history
MIN_HISTORY_MAD_IQR = 12  # non-zero samples MAD and IQR need
MIN_HISTORY_LR = 10  # samples local regression needs (and uses)

# example values: Beloglazov & Buyya 2012's best settings (THR 0.8, IQR 1.5, MAD 2.5, LR/LRR 1.2)
_SAFETY = "the safety parameter (dimensionless; larger is more cautious)"


@detector("thr", "static threshold: overloaded when utilisation > p",
          Param("p", "the CPU utilisation (fraction of capacity) above which a host is overloaded", 0.0, 1.0,
                example=0.8),
          reads_history=False, static_threshold=True)
def static_threshold(p: float, util: np.ndarray, history: np.ndarray | None,
                     migration_intervals: np.ndarray) -> np.ndarray:
    return util > p


@detector("iqr", f"interquartile range: overloaded when utilisation > 1 - s x IQR of the host's history "
          f"({FALLBACK_THRESHOLD} until {MIN_HISTORY_MAD_IQR} recent non-zero samples)",
          Param("s", _SAFETY, 0.0, example=1.5), cloudsim=lambda s, util, history, mig: util > cloudsim_threshold(
              "iqr", s, history))
def interquartile_range(s: float, util: np.ndarray, history: np.ndarray, migration_intervals: np.ndarray) -> np.ndarray:
    return util > adaptive_threshold("iqr", s, history)


@detector("mad", f"median absolute deviation: overloaded when utilisation > 1 - s x MAD of the host's history "
          f"({FALLBACK_THRESHOLD} until {MIN_HISTORY_MAD_IQR} recent non-zero samples)",
          Param("s", _SAFETY, 0.0, example=2.5), cloudsim=lambda s, util, history, mig: util > cloudsim_threshold(
              "mad", s, history))
def median_absolute_deviation(s: float, util: np.ndarray, history: np.ndarray,
                              migration_intervals: np.ndarray) -> np.ndarray:
    return util > adaptive_threshold("mad", s, history)


@detector("lr", f"local regression of the last {MIN_HISTORY_LR} samples, extrapolated by the host's longest "
          f"migration: overloaded when s x prediction >= 1 ({FALLBACK_THRESHOLD} until {MIN_HISTORY_LR} samples)",
          Param("s", _SAFETY, 0.0, example=1.2),
          cloudsim=lambda s, util, history, mig: cloudsim_regression_overloaded(history, s, mig, util))
def local_regression(s: float, util: np.ndarray, history: np.ndarray, migration_intervals: np.ndarray) -> np.ndarray:
    return regression_overloaded(history, s, migration_intervals, robust=False, util=util)


@detector("lrr", "robust local regression: as lr, the fit bisquare-reweighted against outliers",
          Param("s", _SAFETY, 0.0, example=1.2),
          # CloudSim 3.0.3's robust fit collapses to the same least squares line as its plain one
          cloudsim=lambda s, util, history, mig: cloudsim_regression_overloaded(history, s, mig, util))
def robust_local_regression(s: float, util: np.ndarray, history: np.ndarray,
                            migration_intervals: np.ndarray) -> np.ndarray:
    return regression_overloaded(history, s, migration_intervals, robust=True, util=util)


def _leading_nonzero(history: np.ndarray) -> np.ndarray:
    """How many of the most recent samples are non-zero and present, counting back from the newest."""
    if history.shape[1] == 0:
        return np.zeros(history.shape[0], dtype=int)
    ok = np.nan_to_num(history[:, ::-1], nan=0.0) > 0
    first_bad = np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1))
    return first_bad


def adaptive_threshold(kind: str, s: float, history: np.ndarray) -> np.ndarray:
    """Upper utilisation threshold per host: 1 - s*IQR or 1 - s*MAD of its history, or the static fallback
    (0.7) while it has fewer than 12 recent non-zero samples."""
    out = np.full(history.shape[0], FALLBACK_THRESHOLD)
    n = _leading_nonzero(history)
    ok = n >= MIN_HISTORY_MAD_IQR
    if ok.any():
        h = history[ok]
        # the nan-aware reductions sort in Python-level loops; most histories have no gaps
        median, pct = (np.nanmedian, np.nanpercentile) if np.isnan(h).any() else (np.median, np.percentile)
        if kind == "mad":
            med = median(h, axis=1)
            spread = median(np.abs(h - med[:, None]), axis=1)
        else:
            q1, q3 = pct(h, [25, 75], axis=1)
            spread = q3 - q1
        out[ok] = 1.0 - s * spread
    return out


def _wls(y: np.ndarray, w: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares line through each row of y (rows, L) with weights w (rows, L): (intercept, slope)."""
    sw = w.sum(axis=1)
    xm = (w * x).sum(axis=1) / sw
    ym = (w * y).sum(axis=1) / sw
    var = (w * (x - xm[:, None]) ** 2).sum(axis=1)
    cov = (w * (x - xm[:, None]) * (y - ym[:, None])).sum(axis=1)
    slope = np.divide(cov, var, out=np.zeros_like(cov), where=var > 0)
    return ym - slope * xm, slope


def regression_overloaded(history: np.ndarray, safety: float, migration_intervals: np.ndarray, robust: bool,
                          util: np.ndarray) -> np.ndarray:
    """Local regression: fit the last 10 samples with tricube weights (bisquare-reweighted when robust),
    extrapolate by the host's longest migration time, overloaded when safety x prediction >= 1. Hosts with
    fewer than 10 samples fall back to the static 0.7 threshold. Vectorised over hosts."""
    out = util > FALLBACK_THRESHOLD
    L = MIN_HISTORY_LR
    rows = np.flatnonzero(np.sum(~np.isnan(history[:, -L:]), axis=1) >= L) if history.shape[1] >= L else \
        np.array([], dtype=int)
    if rows.size == 0:
        return out
    y = history[rows, -L:]
    x = np.arange(1, L + 1, dtype=float)
    w = np.broadcast_to((1 - ((L - x) / L) ** 3) ** 3, y.shape)  # tricube: the newest samples weigh most
    a, b = _wls(y, w, x)
    if robust:
        resid = y - (a[:, None] + b[:, None] * x)
        mad = np.median(np.abs(resid), axis=1)
        u = np.divide(resid, 6 * mad[:, None], out=np.zeros_like(resid), where=mad[:, None] > 0)
        w2 = w * np.where(np.abs(u) < 1, (1 - u ** 2) ** 2, 0.0)
        ok = w2.sum(axis=1) > 0
        a2, b2 = _wls(y[ok], w2[ok], x)
        a[ok], b[ok] = a2, b2
    predicted = a + b * (L + migration_intervals[rows])
    out[rows] = safety * predicted >= 1.0
    return out


# --- CloudSim 3.0.3's arithmetic (cloudsim_compat) ------------------------------------------------------------

def cloudsim_history(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A host's history as CloudSim 3.0.3 sees it (PowerHostUtilizationHistory.getUtilizationHistory): each
    sample summed over the host's VMs with a missing one counting 0, then MathUtil.trimZeroTail, which drops the
    oldest samples back to the oldest non-zero one and keeps a single 0 of an all-zero history. So a zero in the
    middle is a sample, zeros at the old end are none. Returns (values (hosts, L), most recent last, NaN where
    dropped; samples kept per host)."""
    v = np.nan_to_num(history)
    L = v.shape[1]
    if L == 0:
        return v, np.zeros(v.shape[0], dtype=int)
    nz = v != 0
    n = np.where(nz.any(axis=1), L - np.argmax(nz, axis=1), min(L, 1))
    return np.where(np.arange(L)[None, :] >= (L - n)[:, None], v, np.nan), n


def _sorted_median(srt: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of the first n values of each sorted row (Apache Commons' 50th percentile: the mean of the two
    middle values for even n)."""
    r = np.arange(len(n))
    return (srt[r, (n - 1) // 2] + srt[r, n // 2]) / 2


def cloudsim_threshold(kind: str, s: float, history: np.ndarray) -> np.ndarray:
    """Upper utilisation threshold per host as CloudSim 3.0.3 computes it: 1 - s x IQR (MathUtil.iqr: sorted
    data, quartiles at indices round(0.25 (n+1)) - 1 and round(0.75 (n+1)) - 1, no interpolation) or
    1 - s x MAD of all the samples its trimmed history keeps, when it keeps at least 12; else 0.7."""
    out = np.full(history.shape[0], FALLBACK_THRESHOLD)
    vals, n = cloudsim_history(history)
    ok = n >= MIN_HISTORY_MAD_IQR
    if not ok.any():
        return out
    vals, n = vals[ok], n[ok]
    srt = np.sort(vals, axis=1)  # NaN sort last: the first n of each row are its samples
    r = np.arange(len(n))
    if kind == "iqr":
        q1 = np.floor(0.25 * (n + 1) + 0.5).astype(int) - 1  # Java's Math.round rounds halves up
        q3 = np.floor(0.75 * (n + 1) + 0.5).astype(int) - 1
        spread = srt[r, q3] - srt[r, q1]
    else:
        med = _sorted_median(srt, n)
        spread = _sorted_median(np.sort(np.abs(vals - med[:, None]), axis=1), n)
    out[ok] = 1.0 - s * spread
    return out


def ols_forecast_weights(length: int, at: np.ndarray) -> np.ndarray:
    """Weights w (len(at), length) with w @ y = the ordinary least-squares line through (1..length, y)
    evaluated at x = at: (1/n + (at - mean x)(x - mean x) / Sxx) . y."""
    x = np.arange(1, length + 1, dtype=float)
    c = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    return 1.0 / length + (np.asarray(at, float)[:, None] - x.mean()) * c[None, :]


def cloudsim_regression_overloaded(history: np.ndarray, safety: float, migration_intervals: np.ndarray,
                                   util: np.ndarray) -> np.ndarray:
    """LR and LRR as CloudSim 3.0.3 computes them: MathUtil.getLoessParameterEstimates applies its tricube
    weights only when at least 40% of them are zero, and they never are (they are 1/tricube >= 1), so the fit is
    ordinary least squares with an intercept on x = 1..10 over the 10 newest samples; the robust variant's
    bisquare weights are never zero either, so it is the same line. Overloaded when safety x the line at
    10 + the host's longest migration (intervals) >= 1; hosts whose trimmed history has fewer than 10 samples
    use the static 0.7."""
    out = util > FALLBACK_THRESHOLD
    L = MIN_HISTORY_LR
    if history.shape[1] < L:
        return out
    vals, n = cloudsim_history(history)
    rows = np.flatnonzero(n >= L)
    if rows.size:
        w = ols_forecast_weights(L, L + migration_intervals[rows])
        out[rows] = safety * np.einsum("ij,ij->i", w, vals[rows, -L:]) >= 1.0
    return out
