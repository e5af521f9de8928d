"""WeatherBench2's hourly climatology (weatherbench2/utils.py: compute_hourly_stat -> compute_rolling_stat,
with create_window_weights), re-derived in NumPy from its definition for the tests, not from jigsaw's code:

- the samples of each hour of day are stacked by year on the days of year that any year has at that hour
  (xarray's outer join of the years: 1..366 once a leap year's 31 December is there);
- a year's missing days (absent or NaN) take that year's day-365 values, where day 365 is on the axis
  (`stacked.fillna(stacked.sel(dayofyear=365))`);
- the axis is padded circularly by half the window (`pad(mode='wrap')`) and each day is the mean over the
  years and the centred window, weighted by concatenate(linspace(0, 1, half + 1), linspace(1, 0, half + 1)[1:])
  (normalised by its mean, which cancels), NaN skipped (xarray's weighted mean: sum(w x) / sum(w) over the
  values present)."""
import numpy as np


def hourly_climatology(times, data, window=61, uniform=False):
    """times: datetime64 [T]; data: [T, ...]. Returns {(dayofyear, hour): mean [...]} over the days of each
    hour's axis."""
    times = times.astype("datetime64[s]")
    years = times.astype("datetime64[Y]").astype(np.int64) + 1970
    doy = (times.astype("datetime64[D]") - times.astype("datetime64[Y]")).astype(np.int64) + 1
    hour = (times - times.astype("datetime64[D]")).astype(np.int64) // 3600
    half = window // 2
    if uniform:
        w = np.ones(window)
    else:
        w = np.concatenate([np.linspace(0, 1, half + 1), np.linspace(1, 0, half + 1)[1:]])
    w = w / w.mean()
    out = {}
    for h in np.unique(hour):
        at = hour == h
        days, ys = np.unique(doy[at]), np.unique(years[at])
        stack = np.full((len(ys), len(days)) + data.shape[1:], np.nan)
        for t in np.flatnonzero(at):
            stack[np.searchsorted(ys, years[t]), np.searchsorted(days, doy[t])] = data[t]
        if 365 in days:
            fill = stack[:, np.searchsorted(days, 365)][:, None]
            stack = np.where(np.isnan(stack), fill, stack)
        pad = [(0, 0), (half, half)] + [(0, 0)] * (stack.ndim - 2)
        padded = np.pad(stack, pad, mode="wrap")
        shape = (1, window) + (1,) * (stack.ndim - 2)
        for p, d in enumerate(days):
            win = padded[:, p:p + window]
            present = ~np.isnan(win)
            weights = np.broadcast_to(w.reshape(shape), win.shape) * present
            total = (np.where(present, win, 0) * weights).sum(axis=(0, 1))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[(int(d), int(h))] = total / weights.sum(axis=(0, 1))
    return out
