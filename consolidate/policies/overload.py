"""Host overload detection (the Beloglazov-Buyya family CloudSim implements): pure functions of host
utilisation and its history.

A history is the host's utilisation over past scheduling intervals, computed from the VMs it holds now
(as CloudSim does), most recent LAST, shape (hosts, length); NaN where there is no sample (no VM on the host
has one yet): a missing sample is never read as a zero. Each adaptive detector also registers CloudSim 3.0.3's
own arithmetic (`cloudsim=`), which cloudsim_compat runs instead (docs/consolidation.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consolidate.policies.registry import Detector, Param, detector

FALLBACK_THRESHOLD = 0.7  # static threshold the adaptive detectors use until a host has enough history
MIN_HISTORY_MAD_IQR = 12  # non-zero samples MAD and IQR need
MIN_HISTORY_LR = 10  # samples local regression needs (and uses)

# example values: Beloglazov & Buyya 2012's best settings (THR 0.8, IQR 1.5, MAD 2.5, LR/LRR 1.2)
_SAFETY = "the safety parameter (dimensionless; larger is more cautious)"


def _cloudsim_lr(s: float, util: np.ndarray, history: np.ndarray, mig: np.ndarray) -> np.ndarray:
    """CloudSim 3.0.3's LR and LRR (one function: its robust fit is the same line; cloudsim_regression_overloaded)."""
    return cloudsim_regression_overloaded(history, s, mig, util)


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
          cloudsim=_cloudsim_lr)
def local_regression(s: float, util: np.ndarray, history: np.ndarray, migration_intervals: np.ndarray) -> np.ndarray:
    return regression_overloaded(history, s, migration_intervals, robust=False, util=util)


@detector("lrr", "robust local regression: as lr, the fit bisquare-reweighted against outliers",
          Param("s", _SAFETY, 0.0, example=1.2),
          # CloudSim 3.0.3's robust fit collapses to the same least squares line as its plain one
          cloudsim=_cloudsim_lr)
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


@dataclass(frozen=True)
class LinearForecast:
    """A regression whose prediction is a fixed weighted sum of a host's last L samples: the weighted
    least-squares line through (x = 1..L, y) evaluated at x = at is y @ a + at * (y @ b), whatever y is. Being
    linear in y it also sums over a host's VMs, so a consolidation round keeps y @ a and y @ b per host up to
    date as VMs move (consolidation._Work) and a check costs a few operations instead of a fit.
    trimmed: the fit needs L samples of CloudSim's trimmed history (some non-zero sample L or more back,
    missing counting 0) rather than L present samples."""

    a: np.ndarray  # (L,)
    b: np.ndarray  # (L,)
    trimmed: bool

    @property
    def length(self) -> int:
        return len(self.a)

    def weights(self, at: np.ndarray) -> np.ndarray:
        """(len(at), L): row i dotted with the last L samples is the line at x = at[i]."""
        return self.a[None, :] + np.asarray(at, float)[:, None] * self.b[None, :]


def line_basis(w: np.ndarray, trimmed: bool) -> LinearForecast:
    """The LinearForecast of the least-squares line with weights w on x = 1..len(w):
    y @ w / sum w + (at - mean_w x) * sum w (x - mean_w x) y / sum w (x - mean_w x)^2."""
    x = np.arange(1, len(w) + 1, dtype=float)
    xm = (w * x).sum() / w.sum()
    b = w * (x - xm) / (w * (x - xm) ** 2).sum()
    return LinearForecast(w / w.sum() - xm * b, b, trimmed)


_x = np.arange(1, MIN_HISTORY_LR + 1, dtype=float)
# the default mode's loess: tricube weights, the newest samples weigh most
TRICUBE_LINE = line_basis((1 - ((MIN_HISTORY_LR - _x) / MIN_HISTORY_LR) ** 3) ** 3, trimmed=False)
# CloudSim 3.0.3's: ordinary least squares with an intercept on x = 1..10 (see cloudsim_regression_overloaded)
OLS_LINE = line_basis(np.ones(MIN_HISTORY_LR), trimmed=True)


def linear_overloaded(safety: float, util: np.ndarray, y_a: np.ndarray, y_b: np.ndarray, at: np.ndarray,
                      enough: np.ndarray) -> np.ndarray:
    """LR's decision from a LinearForecast's two sums (utilisation fractions) per host: overloaded when
    safety x (y_a + at x y_b) >= 1 where the host has `enough` history, else when util > the static 0.7."""
    out = util > FALLBACK_THRESHOLD
    if enough.any():
        out[enough] = safety * (y_a[enough] + at[enough] * y_b[enough]) >= 1.0
    return out


def linear_inputs(line: LinearForecast, history: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y @ a, y @ b, enough) per host from histories (hosts, T), most recent last, NaN where missing."""
    L = line.length
    H = history.shape[0]
    if history.shape[1] < L:
        return np.zeros(H), np.zeros(H), np.zeros(H, bool)
    if line.trimmed:
        vals, n = cloudsim_history(history)
        y, enough = vals[:, -L:], n >= L
    else:
        y = history[:, -L:]
        enough = ~np.isnan(y).any(axis=1)
    y = np.where(enough[:, None], y, 0.0)
    return y @ line.a, y @ line.b, enough


def regression_overloaded(history: np.ndarray, safety: float, migration_intervals: np.ndarray, robust: bool,
                          util: np.ndarray) -> np.ndarray:
    """Local regression: fit the last 10 samples with tricube weights (bisquare-reweighted when robust),
    extrapolate by the host's longest migration time, overloaded when safety x prediction >= 1. Hosts with
    fewer than 10 samples fall back to the static 0.7 threshold. Vectorised over hosts."""
    L = MIN_HISTORY_LR
    at = L + np.asarray(migration_intervals, float)
    if not robust:
        y_a, y_b, enough = linear_inputs(TRICUBE_LINE, history)
        return linear_overloaded(safety, util, y_a, y_b, at, enough)
    out = util > FALLBACK_THRESHOLD
    rows = np.flatnonzero(np.sum(~np.isnan(history[:, -L:]), axis=1) >= L) if history.shape[1] >= L else \
        np.array([], dtype=int)
    if rows.size == 0:
        return out
    y = history[rows, -L:]
    x = np.arange(1, L + 1, dtype=float)
    w = np.broadcast_to((1 - ((L - x) / L) ** 3) ** 3, y.shape)  # tricube: the newest samples weigh most
    a, b = _wls(y, w, x)
    resid = y - (a[:, None] + b[:, None] * x)
    mad = np.median(np.abs(resid), axis=1)
    u = np.divide(resid, 6 * mad[:, None], out=np.zeros_like(resid), where=mad[:, None] > 0)
    w2 = w * np.where(np.abs(u) < 1, (1 - u ** 2) ** 2, 0.0)
    ok = w2.sum(axis=1) > 0
    a2, b2 = _wls(y[ok], w2[ok], x)
    a[ok], b[ok] = a2, b2
    out[rows] = safety * (a + b * at[rows]) >= 1.0
    return out


# --- CloudSim 3.0.3's arithmetic (cloudsim_compat) ------------------------------------------------------------

def _trimmed(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(samples with a missing one as 0, how many of the newest CloudSim's trimZeroTail keeps per host). What it
    drops are zeros at the old end, so the kept samples are the last n of each row."""
    v = np.where(np.isnan(history), 0.0, history)
    L = v.shape[1]
    if L == 0:
        return v, np.zeros(v.shape[0], dtype=int)
    nz = v != 0
    return v, np.where(nz.any(axis=1), L - nz.argmax(axis=1), 1)


def cloudsim_history(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A host's history as CloudSim 3.0.3 sees it (PowerHostUtilizationHistory.getUtilizationHistory): each
    sample summed over the host's VMs with a missing one counting 0, then MathUtil.trimZeroTail, which drops the
    oldest samples back to the oldest non-zero one and keeps a single 0 of an all-zero history. So a zero in the
    middle is a sample, zeros at the old end are none. Returns (values (hosts, L), most recent last, NaN where
    dropped; samples kept per host)."""
    v, n = _trimmed(history)
    L = v.shape[1]
    return np.where(np.arange(L)[None, :] >= (L - n)[:, None], v, np.nan), n


def _sorted_median(srt: np.ndarray, first: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of the n values of each sorted row from column `first` on (Apache Commons' 50th percentile: the
    mean of the two middle values for even n)."""
    r = np.arange(len(n))
    return (srt[r, first + (n - 1) // 2] + srt[r, first + n // 2]) / 2


def cloudsim_threshold(kind: str, s: float, history: np.ndarray) -> np.ndarray:
    """Upper utilisation threshold per host as CloudSim 3.0.3 computes it: 1 - s x IQR (MathUtil.iqr: sorted
    data, quartiles at indices round(0.25 (n+1)) - 1 and round(0.75 (n+1)) - 1, no interpolation) or
    1 - s x MAD of all the samples its trimmed history keeps, when it keeps at least 12; else 0.7.
    Utilisation is never negative, which the sorting below relies on."""
    out = np.full(history.shape[0], FALLBACK_THRESHOLD)
    v, n = _trimmed(history)
    ok = n >= MIN_HISTORY_MAD_IQR
    if not ok.any():
        return out
    v, n = v[ok], n[ok]
    L = v.shape[1]
    off = L - n  # the dropped samples are zeros: sorted, they come first and the kept ones follow
    srt = np.sort(v, axis=1)
    r = np.arange(len(n))
    if kind == "iqr":
        q1 = np.floor(0.25 * (n + 1) + 0.5).astype(int) - 1  # Java's Math.round rounds halves up
        q3 = np.floor(0.75 * (n + 1) + 0.5).astype(int) - 1
        spread = srt[r, off + q3] - srt[r, off + q1]
    else:
        med = _sorted_median(srt, off, n)
        dev = np.where(np.arange(L)[None, :] >= off[:, None], np.abs(v - med[:, None]), np.inf)  # dropped last
        spread = _sorted_median(np.sort(dev, axis=1), np.zeros_like(n), n)
    out[ok] = 1.0 - s * spread
    return out


def cloudsim_regression_overloaded(history: np.ndarray, safety: float, migration_intervals: np.ndarray,
                                   util: np.ndarray) -> np.ndarray:
    """LR and LRR as CloudSim 3.0.3 computes them: MathUtil.getLoessParameterEstimates applies its tricube
    weights only when at least 40% of them are zero, and they never are (they are 1/tricube >= 1), so the fit is
    ordinary least squares with an intercept on x = 1..10 over the 10 newest samples (OLS_LINE); the robust
    variant's bisquare weights are never zero either, so it is the same line. Overloaded when safety x the line
    at 10 + the host's longest migration (intervals) >= 1; hosts whose trimmed history has fewer than 10 samples
    use the static 0.7."""
    y_a, y_b, enough = linear_inputs(OLS_LINE, history)
    return linear_overloaded(safety, util, y_a, y_b, MIN_HISTORY_LR + np.asarray(migration_intervals, float), enough)


# detector functions whose decision is a LinearForecast's: a round keeps their sums per host (consolidation.py)
LINEAR_DETECTORS = {local_regression: TRICUBE_LINE, _cloudsim_lr: OLS_LINE}


def linear_forecast(det: Detector) -> LinearForecast | None:
    """The LinearForecast behind the function `det` runs (its CloudSim variant under compat, as
    Detector.overloaded picks it), None when that detector is not a fixed weighted sum of the history."""
    e = det.entry
    return LINEAR_DETECTORS.get(e.cloudsim if det.compat and e.cloudsim is not None else e.fn)
