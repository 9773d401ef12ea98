import os
import tempfile
import unittest

from kmeans.points import load_points


class LoadPoints(unittest.TestCase):
    def test_reads_every_point_of_the_sample(self):
        points = load_points("data/points.csv")
        self.assertEqual(len(points), 30)
        self.assertEqual(points[0], (1.0, 1.0))
        self.assertEqual(points[1], (9.2, 2.7))

    def test_a_bad_row_names_its_line(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "bad.csv")
            with open(path, "w") as handle:
                handle.write("x,y\n1,2\n3;4\n")
            with self.assertRaisesRegex(ValueError, ":3:"):
                load_points(path)


if __name__ == "__main__":
    unittest.main()
