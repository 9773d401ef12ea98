"""L3: the command line on the sample reaches the known optimal inertia."""

import json
import subprocess
import sys
import unittest

KNOWN_OPTIMAL_INERTIA = 14.307


class EndToEnd(unittest.TestCase):
    def test_cli_finds_the_known_optimum(self):
        run = subprocess.run(
            [sys.executable, "-m", "kmeans", "data/points.csv", "3"], capture_output=True, text=True, check=True
        )
        result = json.loads(run.stdout)
        self.assertAlmostEqual(result["inertia"], KNOWN_OPTIMAL_INERTIA, places=6)
        self.assertEqual([c["size"] for c in result["clusters"]], [10, 10, 10])


if __name__ == "__main__":
    unittest.main()
