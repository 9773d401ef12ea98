import unittest

from kmeans.assign import assign


class Assignment(unittest.TestCase):
    def test_nearest_centroid(self):
        points = [(0.0, 0.0), (10.0, 0.0), (4.0, 0.0), (6.0, 0.0)]
        self.assertEqual(assign(points, [(0.0, 0.0), (10.0, 0.0)]), [0, 1, 0, 1])

    def test_ties_go_to_the_lower_index(self):
        self.assertEqual(assign([(5.0, 0.0)], [(0.0, 0.0), (10.0, 0.0)]), [0])


if __name__ == "__main__":
    unittest.main()
