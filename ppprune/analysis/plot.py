"""PNG pictures of results: sensitivities (curves for a few params, a heatmap for many) and recipes (a metric
against a cost, one point per recipe with its spread over seeds)."""

MAX_CURVES = 10  # beyond this the colour cycle repeats and a legend becomes a wall of names


def _figure(name, size):
    try:
        # A bare Figure renders with Agg on savefig: no pyplot, so a user's interactive backend is untouched.
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"{name} needs matplotlib: pip install matplotlib (or ppprune[plot])") from e
    return Figure(figsize=size)


def _save(fig, path):
    from ..fsutil import atomic_write

    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    return path


def plot_sensitivities(sensitivities, path, title="Sensitivity", chosen=None, max_curves=MAX_CURVES):
    """Draw `{param: {ratio: loss}}` (e.g. `load_sensitivities(file)`) to the image `path`; returns `path`.
    Up to `max_curves` params: one loss-vs-ratio curve each. More: a heatmap, one row per param (in the
    order given), one column per measured ratio, colour = loss. `chosen` ({param: ratio}) marks the ratio
    picked for each param."""
    chosen = chosen or {}
    if len(sensitivities) > max_curves:
        return _heatmap(sensitivities, path, title, chosen)
    fig = _figure("plot_sensitivities", (8, 5))
    ax = fig.add_subplot()
    for param, losses in sensitivities.items():
        ratios = sorted(losses)
        (line,) = ax.plot(ratios, [losses[r] for r in ratios], marker="o", markersize=3, label=param)
        if param in chosen:
            ax.axvline(chosen[param], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("pruned ratio (share of output channels removed)")
    ax.set_ylabel("loss ((baseline - metric) / baseline)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if sensitivities:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def _heatmap(sensitivities, path, title, chosen):
    import numpy as np

    params = list(sensitivities)
    ratios = sorted({float(r) for losses in sensitivities.values() for r in losses})
    column = {r: j for j, r in enumerate(ratios)}
    grid = np.full((len(params), len(ratios)), np.nan)  # a ratio not measured for a param stays blank
    for i, p in enumerate(params):
        for r, loss in sensitivities[p].items():
            grid[i, column[float(r)]] = loss
    fig = _figure("plot_sensitivities", (1.5 + 0.6 * len(ratios), 1.5 + 0.22 * len(params)))
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="loss ((baseline - metric) / baseline)")
    ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
    ax.set_yticks(range(len(params)), params, fontsize=6)
    marked = [(np.interp(chosen[p], ratios, range(len(ratios))), i) for i, p in enumerate(params) if p in chosen]
    if marked:  # between columns when the chosen ratio was interpolated between two measured ones
        ax.scatter(*zip(*marked), marker="|", s=80, color="red", linewidths=2)
    ax.set_xlabel("pruned ratio (share of output channels removed)")
    ax.set_title(f"{title} (red: chosen ratio)" if marked else title)
    return _save(fig, path)


def plot_recipes(points, path, xlabel, ylabel, title=None):
    """One marker and colour per recipe: `points` is a list of `(recipe, x, ys)`; the point sits at the mean
    of `ys` (one value per seed) and an error bar spans their min to max. Returns `path`."""
    import numpy as np

    fig = _figure("plot_recipes", (7, 4.5))
    ax = fig.add_subplot()
    colours = _palette(len(points))
    markers = "osD^v<>ph*X"
    for k, (recipe, x, ys) in enumerate(points):
        ys = np.asarray(ys, dtype=float)
        mean = ys.mean()
        ax.errorbar([x], [mean], yerr=[[mean - ys.min()], [ys.max() - mean]], fmt=markers[k % len(markers)],
                    color=colours[k], capsize=3, markersize=6,
                    label=f"{recipe} ({len(ys)} seed{'s' if len(ys) != 1 else ''})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if points:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def _palette(n):
    """`n` distinct colours: tab10 up to 10, else hues evenly spaced."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]
