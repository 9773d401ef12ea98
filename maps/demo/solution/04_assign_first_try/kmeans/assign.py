"""Assignment step of Lloyd's algorithm."""

from .vector import dist2


def assign(points, centroids):
    """Index of the nearest centroid for every point."""
    return [min(range(len(centroids)), key=lambda c: (dist2(p, centroids[c]), -c)) for p in points]
