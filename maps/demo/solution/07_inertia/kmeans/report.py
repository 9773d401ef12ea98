"""Scoring and summarising a clustering."""

from .vector import dist2


def inertia(points, centroids, labels):
    """Sum of squared distances from each point to its centroid."""
    return sum(dist2(p, centroids[label]) for p, label in zip(points, labels))
