"""Loss-vs-ratio curves of sensitivity results, one line per parameter, saved as a PNG."""


def plot_sensitivities(sensitivities, path, title="Sensitivity"):
    """Draw `{param: {ratio: loss}}` (e.g. `load_sensitivities(file)`) to the image `path`; returns `path`."""
    try:
        # A bare Figure renders with Agg on savefig: no pyplot, so a user's interactive backend is untouched.
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("plot_sensitivities needs matplotlib: pip install matplotlib (or ppprune[plot])") from e
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    for param, losses in sensitivities.items():
        ratios = sorted(losses)
        ax.plot(ratios, [losses[r] for r in ratios], marker="o", markersize=3, label=param)
    ax.set_xlabel("pruned ratio (share of output channels removed)")
    ax.set_ylabel("loss ((baseline - metric) / baseline)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if sensitivities:
        # Many convs: the legend goes beside the axes, in columns, so it never hides the curves.
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=1 + len(sensitivities) // 20)
    from ..fsutil import atomic_write

    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    return path
