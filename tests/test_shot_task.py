"""The shot task: window planning, the differentiable root recovery against HumanML3D's, seeds and candidates,
cancellation, and on the demo model continuity, constraints and each segment's text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from serving import model_fixture  # noqa: F401  (pytest fixture "model": the tiny random-weight model)

from backend import load_model
from backend.eval.text_checks import passes
from backend.tasks import GenerationCancelled, TaskControl, shot_to_motion, text_to_motion
from backend.tasks.shot import FADE_FRAMES, OVERLAP_FRAMES, PATH_WINDOW_FRAMES, Window, _window_seed, plan_windows
from backend.tasks.shot_kinematics import RootStart, proportioned, world_joints
from shared.motion.humanml3d import features_to_joints
from shared.motion.retarget import proportioned_joints
from shared.motion.shot_math import constraint_errors, root_path
from shared.motion.skeleton import tpose_joints
from shared.shot import Segment, Shot, shot_from_dict

WALK, WAVE = "a person walks forward", "a person waves the right hand"


def test_windows_cover_the_shot_continuing_from_the_one_before():
    shot = Shot((Segment(WALK, 10.0), Segment(WAVE, 5.0), Segment("a person jumps", 1.0)))
    windows = plan_windows(shot, max_frames=196)
    # 200 walk frames in two even chunks (at most 176 new frames each), then the wave and the jump.
    assert windows == [
        Window(0, 100, 0, WALK, 0),
        Window(80, 200, 20, WALK, 0),
        Window(180, 300, 20, WAVE, 1),
        Window(280, 320, 20, "a person jumps", 2),
    ]
    assert OVERLAP_FRAMES == 20


def test_windows_are_shorter_where_a_path_runs():
    shot = shot_from_dict(
        {
            "segments": [{"text": WALK, "seconds": 12}, {"text": WAVE, "seconds": 6}],
            "paths": [{"start": 1, "end": 11, "points": [[0, 0.5], [0, 6]]}],
        }
    )
    windows = plan_windows(shot, max_frames=196)
    walk = [w for w in windows if w.segment == 0]
    assert len(walk) == 3 and all(w.end - w.start - w.known <= PATH_WINDOW_FRAMES for w in walk)
    assert [w.segment for w in windows[len(walk) :]] == [1]  # the wave has no path: one window


def test_the_differentiable_root_recovery_equals_humanml3d_s(cmu_walk):
    features, _ = cmu_walk
    raw = torch.tensor(features[None], dtype=torch.float64)
    zero = RootStart(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    joints, _, _ = world_joints(raw, zero)
    reference = features_to_joints(features)
    np.testing.assert_allclose(joints[0].numpy(), reference, atol=1e-9)
    # Continuing from frame 60's pose: the rest of the clip lands exactly where the whole clip has it.
    path, facing = root_path(features)
    start = RootStart(torch.tensor(path[None, 60]), torch.tensor(facing[None, 60]))
    joints, _, _ = world_joints(raw[:, 60:], start)
    np.testing.assert_allclose(joints[0].numpy(), reference[60:], atol=1e-9)


def test_rest_proportioned_joints_equal_the_add_on_s_retargeting(cmu_walk):
    joints = features_to_joints(cmu_walk[0])
    got = proportioned(torch.tensor(joints)).numpy()
    np.testing.assert_allclose(got, proportioned_joints(joints, tpose_joints(), 1.0), atol=1e-12)


def test_an_unconstrained_short_shot_is_what_generate_gives(model):
    shot = Shot((Segment(WALK, 3.0),))
    (motion,) = shot_to_motion(model, shot, seed=11, steps=4)
    (expected,) = text_to_motion(model, [WALK], 60, seed=11, steps=4)[0]
    np.testing.assert_array_equal(motion, expected)


def test_a_later_segment_is_the_prompt_s_own_motion_after_its_transition(model):
    # The second segment opens its own window: past the first second (the fade from the walk's last frame, and the
    # join smoothing inside it) its frames are what `generate` gives for that prompt, length and window seed.
    shot = Shot((Segment(WALK, 2.0), Segment(WAVE, 3.0)))
    (motion,) = shot_to_motion(model, shot, seed=5, steps=4)
    (wave,) = text_to_motion(model, [WAVE], 60, seed=_window_seed(5, 1), steps=4)[0]
    np.testing.assert_allclose(motion[40 + FADE_FRAMES :], wave[FADE_FRAMES:], rtol=1e-5, atol=1e-5)
    assert not np.allclose(motion[40:50], wave[:10], atol=1e-3)  # the transition itself starts from the walk
    # ... and one of the model's longest prompts after another segment is still one window
    windows = plan_windows(Shot((Segment(WALK, 2.0), Segment(WAVE, 9.8))), max_frames=196)
    assert windows[1:] == [Window(20, 236, 20, WAVE, 1)]


def test_seeds_and_candidates(model):
    shot = shot_from_dict(
        {
            "segments": [{"text": WALK, "seconds": 2}, {"text": WAVE, "seconds": 1}],
            "waypoints": [{"time": 1.5, "position": [0.2, 0.8]}],
        }
    )
    options = {"steps": 4, "refine_steps": 3}
    one = shot_to_motion(model, shot, seed=3, **options)
    two = shot_to_motion(model, shot, seed=3, candidates=2, **options)
    assert len(two) == 2 and all(m.shape == (60, 263) for m in two)
    np.testing.assert_array_equal(two[0], one[0])  # candidate 0 does not depend on how many were asked for
    assert not np.allclose(two[0], two[1])
    np.testing.assert_array_equal(shot_to_motion(model, shot, seed=3, **options)[0], one[0])
    assert not np.allclose(shot_to_motion(model, shot, seed=4, **options)[0], one[0])


def test_a_shot_reports_progress_and_stops_when_cancelled(model):
    shot = shot_from_dict(
        {
            "segments": [{"text": WALK, "seconds": 6}, {"text": WAVE, "seconds": 3}],
            "waypoints": [{"time": 5, "position": [0, 2]}],
        }
    )
    seen: list[tuple[str, int, int]] = []
    control = TaskControl(progress=lambda stage, done, total: seen.append((stage, done, total)))
    shot_to_motion(model, shot, steps=4, refine_steps=5, control=control)
    assert {stage for stage, _, _ in seen} == {"shot"}
    assert seen[-1][1] == seen[-1][2] == 2 * (1 + 5)  # two windows
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)

    calls = []

    def cancel_after_a_few() -> bool:
        calls.append(1)
        return len(calls) > 6

    with pytest.raises(GenerationCancelled):
        shot_to_motion(model, shot, steps=4, refine_steps=50, control=TaskControl(should_cancel=cancel_after_a_few))
    assert len(calls) == 7  # it stopped at the first check that said so


@pytest.fixture(scope="module")
def demo():
    torch.set_num_threads(1)
    return load_model(None, device="cpu")


def test_a_demo_shot_is_continuous_meets_its_constraints_and_keeps_each_segment_s_action(demo):
    shot = shot_from_dict(
        {
            "segments": [{"text": WALK, "seconds": 8}, {"text": WAVE, "seconds": 5}],
            "waypoints": [{"time": 7.0, "position": [1.5, 4.0]}],
            "targets": [{"joint": "right_hand", "time": 10.5, "position": [1.4, 1.65, 4.3]}],
        }
    )
    (motion,) = shot_to_motion(demo, shot, seed=2)
    joints = features_to_joints(motion)  # the reference decoding, not the task's own kinematics
    assert np.linalg.norm(joints[140, 0, [0, 2]] - [1.5, 4.0]) < 0.10
    # The hand where the SMPL-22 rest skeleton (the add-on's armature, the BVH output) puts it: the rig keeps its own
    # bone lengths along the generated bone directions (shared retargeting, not the task's torch code).
    on_rig = proportioned_joints(joints, tpose_joints(), 1.0)
    assert np.linalg.norm(on_rig[210, 21] - [1.4, 1.65, 4.3]) < 0.05
    errors = constraint_errors(motion, shot)
    assert max(errors.waypoints) < 0.10 and max(errors.targets) < 0.05
    # No pop where the windows meet: the largest joint step there is no larger than the largest elsewhere.
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)  # (T-1,) metres per frame
    joins = [w.start + w.known for w in plan_windows(shot, 196)[1:]]
    near = np.zeros(len(steps), bool)
    for join in joins:
        near[join - 3 : join + 3] = True
    assert steps[near].max() <= steps[~near].max(), (steps[near].max(), steps[~near].max())
    assert passes(WALK, joints[:160]) and passes(WAVE, joints[160:])
