import unittest

from kmeans.report import summarize


class Summary(unittest.TestCase):
    def test_clusters_sorted_by_centroid_with_sizes(self):
        summary = summarize([(9.0, 2.0), (1.0, 1.0)], [0, 1, 1])
        self.assertEqual(summary, [{"centroid": [1.0, 1.0], "size": 2}, {"centroid": [9.0, 2.0], "size": 1}])


if __name__ == "__main__":
    unittest.main()
