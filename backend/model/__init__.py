"""The MotionGPT3 model: motion VAE, Mixture-of-Transformers GPT-2 backbone, diffusion head, checkpoints."""
