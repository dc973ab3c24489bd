"""The MotionGPT3 backend: model, inference, server and the `motiongpt3` command line."""
