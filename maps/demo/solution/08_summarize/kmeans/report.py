"""Scoring and summarising a clustering."""

from .vector import dist2


def inertia(points, centroids, labels):
    """Sum of squared distances from each point to its centroid."""
    return sum(dist2(p, centroids[label]) for p, label in zip(points, labels))


def summarize(centroids, labels):
    """Clusters ordered by centroid (x, then y): each with its rounded centroid and size."""
    sizes = [labels.count(c) for c in range(len(centroids))]
    clusters = [{"centroid": [round(x, 6), round(y, 6)], "size": size} for (x, y), size in zip(centroids, sizes)]
    return sorted(clusters, key=lambda c: tuple(c["centroid"]))
