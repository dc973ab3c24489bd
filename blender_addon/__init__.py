"""MotionGPT3 for Blender add-on (N-panel, operators, retargeting): not built yet; see the issues."""
