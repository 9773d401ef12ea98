"""L2 for the region "Lloyd iteration": from the seeds, the loop converges on the three true centres."""

import unittest

from kmeans.lloyd import lloyd
from kmeans.points import load_points
from kmeans.seed import seed_centroids


class LloydRegion(unittest.TestCase):
    def test_converges_to_the_three_cluster_centres(self):
        points = load_points("data/points.csv")
        centroids, labels, iterations = lloyd(points, seed_centroids(points, 3))
        self.assertLess(iterations, 10)
        expected = [(1.0, 1.01), (9.0, 2.01), (5.0, 8.01)]
        for (x, y), (ex, ey) in zip(centroids, expected):
            self.assertAlmostEqual(x, ex, places=6)
            self.assertAlmostEqual(y, ey, places=6)
        self.assertEqual(sorted(labels.count(c) for c in range(3)), [10, 10, 10])


if __name__ == "__main__":
    unittest.main()
