"""Evaluation: T2M/M2T metrics, the Guo et al. T2M evaluator, our contrastive evaluator and `motiongpt3 eval`."""
