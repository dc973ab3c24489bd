"""Training MotionGPT3: HumanML3D-layout data, prompt templates, stage definitions, losses and the loop."""
