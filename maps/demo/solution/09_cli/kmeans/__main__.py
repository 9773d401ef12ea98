"""python -m kmeans POINTS.csv K — cluster the points and print the result as JSON."""

import json
import sys

from .lloyd import lloyd
from .points import load_points
from .report import inertia, summarize
from .seed import seed_centroids


def main(argv):
    if len(argv) != 2:
        print("usage: python -m kmeans POINTS.csv K", file=sys.stderr)
        return 2
    points = load_points(argv[0])
    centroids, labels, iterations = lloyd(points, seed_centroids(points, int(argv[1])))
    result = {
        "k": len(centroids),
        "iterations": iterations,
        "inertia": round(inertia(points, centroids, labels), 6),
        "clusters": summarize(centroids, labels),
    }
    print(json.dumps(result))
    return 0


sys.exit(main(sys.argv[1:]))
