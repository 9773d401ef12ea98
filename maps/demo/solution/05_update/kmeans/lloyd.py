"""Lloyd's iteration: assign, update, and stop once no centroid moves more than `tol`."""

from .assign import assign
from .update import update
from .vector import dist2


def lloyd(points, centroids, tol=1e-9, max_iter=100):
    """Returns (centroids, labels, iterations)."""
    for iteration in range(1, max_iter + 1):
        labels = assign(points, centroids)
        moved = update(points, labels, centroids)
        shift = max(dist2(a, b) for a, b in zip(moved, centroids))
        centroids = moved
        if shift <= tol * tol:
            break
    return centroids, assign(points, centroids), iteration
