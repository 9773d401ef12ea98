import unittest

from kmeans.points import load_points
from kmeans.seed import seed_centroids


class Seeding(unittest.TestCase):
    def test_farthest_point_seeds_on_the_sample(self):
        seeds = seed_centroids(load_points("data/points.csv"), 3)
        self.assertEqual(seeds, [(1.0, 1.0), (9.8, 2.1), (4.6, 8.6)])

    def test_k_out_of_range(self):
        with self.assertRaises(ValueError):
            seed_centroids([(0.0, 0.0)], 2)


if __name__ == "__main__":
    unittest.main()
