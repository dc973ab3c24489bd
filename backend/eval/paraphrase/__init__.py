"""The paraphrase suite: user-worded prompts with measurable checks on the generated joints, and caption checks by
action family on held-out synthetic and real clips (`motiongpt3 eval-suite`)."""
