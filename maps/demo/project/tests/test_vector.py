import unittest

from kmeans.vector import dist2, mean


class VectorMath(unittest.TestCase):
    def test_squared_distance(self):
        self.assertEqual(dist2((0.0, 0.0), (3.0, 4.0)), 25.0)
        self.assertEqual(dist2((1.5, -2.0), (1.5, -2.0)), 0.0)

    def test_mean(self):
        self.assertEqual(mean([(0.0, 0.0), (2.0, 4.0), (4.0, 2.0)]), (2.0, 2.0))

    def test_mean_of_nothing_is_an_error(self):
        with self.assertRaises(ValueError):
            mean([])


if __name__ == "__main__":
    unittest.main()
