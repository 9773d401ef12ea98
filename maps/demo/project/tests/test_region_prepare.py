"""L2 for the region "Prepare": the seeds come from the loaded data and are pairwise far apart."""

import unittest

from kmeans.points import load_points
from kmeans.seed import seed_centroids
from kmeans.vector import dist2


class PrepareRegion(unittest.TestCase):
    def test_seeds_are_distinct_input_points_far_apart(self):
        points = load_points("data/points.csv")
        seeds = seed_centroids(points, 3)
        self.assertTrue(all(seed in points for seed in seeds))
        gaps = [dist2(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1 :]]
        self.assertGreater(min(gaps), 25.0)


if __name__ == "__main__":
    unittest.main()
