"""Real Blender (bpy module) imports the BVH we write and poses every bone head on the HumanML3D joints."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from shared.motion.axes import yup_to_zup
from shared.motion.bvh import write_bvh
from shared.motion.ik import solve_local_rotations
from shared.motion.skeleton import BVH_JOINT_NAMES


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


def _world_bone_heads(armature: bpy.types.Object, frames: range) -> np.ndarray:
    scene = bpy.context.scene
    bones = [armature.pose.bones[name] for name in BVH_JOINT_NAMES]
    heads = np.empty((len(frames), len(bones), 3))
    for t, frame in enumerate(frames):
        scene.frame_set(frame)
        heads[t] = [tuple(armature.matrix_world @ bone.head) for bone in bones]
    return heads


def test_blender_imports_our_bvh_onto_the_joints(empty_scene, cmu_walk, tmp_path):
    joints = cmu_walk[1].astype(np.float64)
    solved = solve_local_rotations(joints, fit_triads=True)
    path = tmp_path / "012314.bvh"
    write_bvh(path, solved.local_rotations, solved.root_positions, solved.rest_offsets, fps=20.0)

    result = bpy.ops.import_anim.bvh(
        filepath=str(path),
        axis_forward="-Z",
        axis_up="Y",
        rotate_mode="NATIVE",
        update_scene_fps=True,
        update_scene_duration=True,
    )
    assert result == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    assert armature.type == "ARMATURE"
    assert empty_scene.render.fps / empty_scene.render.fps_base == pytest.approx(20.0)
    # The importer only ever extends the scene range, so read the clip length off the Action.
    assert tuple(armature.animation_data.action.frame_range) == (1.0, float(len(joints)))

    heads = _world_bone_heads(armature, range(1, len(joints) + 1))
    np.testing.assert_allclose(heads, yup_to_zup(joints), atol=1e-5)
