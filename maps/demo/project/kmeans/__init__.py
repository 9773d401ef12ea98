"""k-means clustering, built node by node from the demo algorithm map."""
