"""Training jobs: BC pre-training, DPPO / Gaussian PPO fine-tuning, evaluation."""
