"""Small vector helpers for 2-D points."""


def dist2(a, b):
    """Squared Euclidean distance."""
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2


def mean(points):
    """Component-wise mean of a non-empty list of points."""
    if not points:
        raise ValueError("mean of no points")
    n = len(points)
    return (sum(p[0] for p in points) / n, sum(p[1] for p in points) / n)
