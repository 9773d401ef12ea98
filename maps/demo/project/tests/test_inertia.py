import unittest

from kmeans.report import inertia


class Inertia(unittest.TestCase):
    def test_sum_of_squared_distances(self):
        points = [(0.0, 0.0), (0.0, 2.0), (5.0, 5.0)]
        self.assertEqual(inertia(points, [(0.0, 1.0), (5.0, 5.0)], [0, 0, 1]), 2.0)


if __name__ == "__main__":
    unittest.main()
