"""`make bench`: speed measurements as ratios against a baseline measured in the same process."""
