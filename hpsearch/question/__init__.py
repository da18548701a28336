"""Questions: compare the levels of one or two factors, each level tuned with the same budget in
its own study, the best of each retrained with the same seeds and scored on the test split."""
