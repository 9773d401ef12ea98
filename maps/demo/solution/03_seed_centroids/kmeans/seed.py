"""Deterministic farthest-point seeding."""

from .vector import dist2


def seed_centroids(points, k):
    """Start from the first point; then repeatedly take the point farthest from every chosen seed
    (ties go to the earlier point)."""
    if not 1 <= k <= len(points):
        raise ValueError(f"k must be between 1 and {len(points)}, got {k}")
    seeds = [points[0]]
    nearest = [dist2(p, seeds[0]) for p in points]
    while len(seeds) < k:
        best = max(range(len(points)), key=lambda i: (nearest[i], -i))
        seeds.append(points[best])
        nearest = [min(d, dist2(p, points[best])) for d, p in zip(nearest, points)]
    return seeds
