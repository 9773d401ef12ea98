import unittest

from kmeans.lloyd import lloyd
from kmeans.update import update


class Update(unittest.TestCase):
    def test_centroids_move_to_their_means(self):
        points = [(0.0, 0.0), (2.0, 0.0), (10.0, 10.0)]
        self.assertEqual(update(points, [0, 0, 1], [(5.0, 5.0), (0.0, 0.0)]), [(1.0, 0.0), (10.0, 10.0)])

    def test_an_empty_cluster_keeps_its_centroid(self):
        self.assertEqual(update([(1.0, 1.0)], [0], [(0.0, 0.0), (7.0, 7.0)]), [(1.0, 1.0), (7.0, 7.0)])

    def test_lloyd_stops_when_nothing_moves(self):
        points = [(0.0, 0.0), (0.0, 2.0), (10.0, 0.0), (10.0, 2.0)]
        centroids, labels, iterations = lloyd(points, [(0.0, 0.0), (10.0, 0.0)])
        self.assertEqual(centroids, [(0.0, 1.0), (10.0, 1.0)])
        self.assertEqual(labels, [0, 0, 1, 1])
        self.assertEqual(iterations, 2)


if __name__ == "__main__":
    unittest.main()
