"""Diffusion policy core: noise schedules, denoiser networks, samplers and log-probabilities.

Shape legend used throughout the model and RL modules:
    B   batch
    K   denoising steps of the DDPM chain
    K'  fine-tuned denoising steps (the last K' steps of the chain)
    S   sampling steps actually run (K for DDPM, ddim_steps for DDIM)
    To  observation history (cond_steps)
    Tp  predicted action chunk (horizon_steps)
    Ta  executed action chunk (act_steps)
    Do  observation dimension, Da action dimension
"""
