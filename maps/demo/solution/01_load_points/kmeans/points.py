"""Reading 2-D points from a CSV file."""

Point = tuple[float, float]


def load_points(path):
    """Points from a CSV with an `x,y` header; blank lines are skipped."""
    points = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or (number == 1 and text.lower().startswith("x")):
                continue
            parts = text.split(",")
            if len(parts) != 2:
                raise ValueError(f"{path}:{number}: expected 'x,y', got {text!r}")
            try:
                points.append((float(parts[0]), float(parts[1])))
            except ValueError:
                raise ValueError(f"{path}:{number}: not a number in {text!r}") from None
    if not points:
        raise ValueError(f"{path}: no points")
    return points
