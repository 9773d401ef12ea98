"""Update step of Lloyd's algorithm."""

from .vector import mean


def update(points, labels, centroids):
    """Each centroid moves to the mean of its points; a centroid with no points stays where it is."""
    members = [[] for _ in centroids]
    for point, label in zip(points, labels):
        members[label].append(point)
    return [mean(group) if group else centroid for group, centroid in zip(members, centroids)]
