"""Code shared by the Blender add-on and the backend: numpy motion math and the wire protocol (no torch, no bpy)."""
