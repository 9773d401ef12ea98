"""The demo's benchmark: cluster the sample with k = 3 and print the objective (inertia) alone."""

import json
import subprocess
import sys

run = subprocess.run(
    [sys.executable, "-m", "kmeans", "data/points.csv", "3"], capture_output=True, text=True, check=True
)
print(json.loads(run.stdout)["inertia"])
