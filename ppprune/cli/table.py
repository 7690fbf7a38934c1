"""Plain-text tables the tools print."""


def print_table(title, columns, rows):
    """rows: (label, values...) with values already formatted."""
    widths = [max(len(str(r[i])) for r in [columns] + rows) for i in range(len(columns))]
    print(title)
    for r in [columns] + rows:
        print("  " + "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
