"""Benchmark: do the teacher-selecting agents learn which teacher to trust? Teachers with planted, known errors.

Nothing is trained but the student: each design writes a tiny review task and plants its teachers'
logit caches directly, so which teacher is wrong on which training instance is known. Per seed, the
equal-weight student (u_ensemble) is distilled once and an agent once per named setting: a dict written as
params.yaml's section `methods.agent`, whose `method` names the agent's file (`rl_kd`, the paper's RL-KD, or
`effect_agent`, this suite's; effect_agent where it names none). Measured per corrupted teacher: the selection
gap, its mean selection probability (`select_<teacher>` in runs/reviews/agent/SEED/weights.parquet) on its clean
training instances minus on its corrupted ones (met at >= 0.3); and whether the agent's student beats the
equal-weight one on test accuracy.

Designs (700 reviews each; a tiny random-init student; distill.alpha 0.9, temperature 2, 8 epochs):
  coin         `good` right everywhere; `bad_a` and `bad_b` the same logits flipped (confidently wrong)
               on a random half of train (a coin flip per instance), right on dev and test. Equal
               weighting teaches the student the wrong label on that half (two of three teachers).
  specialists  reviews of three kinds by length: 2, 6 or 10 filler words, plus one sentiment word and
               the index (4, 8 or 12 words). Teacher `spec_k` is right and confident on kind k and
               confidently wrong (flipped) on the two other kinds, in every split, as a narrow specialist
               would be. Its corrupted set: its train instances of the other kinds. On every instance
               two of the three teachers are wrong, so equal weighting teaches the wrong label
               everywhere (test accuracy 13-33 % in seeds 1-3, below chance); the right teacher differs
               by kind of input, so no single teacher, and no one rule over teachers, is right. The pooled
               vectors are noise in both designs.
  (An earlier specialists design, uninformative rather than wrong on a third kind, left equal weighting
  unhurt at alpha 0.9: its three soft targets average to uniform and the student learns from gold.)
  noisy        (--design noisy; no target: it misleads the heuristics that read the gold label) the coin
               reviews with NOISE (30%) of the training labels flipped, dev and test clean; `good` knows
               the true label, `echo_a` and `echo_b` learnt the flipped gold labels by heart (confident in
               the gold label on every training instance). best_single and ca_mkd, which trust the teacher
               that agrees with the gold label, follow the echoes exactly where the gold label is wrong.
8 epochs: one equal-weight warm-up epoch and seven with the agent. With 4 (three with the agent) the
tiny student had not recovered from the switch of targets when training ended, and the best-on-dev
epoch of RL-KD was in some seeds the warm-up epoch, before the agent acted (coin, seed 3).

Usage: python -m benchmarks.planted [--seeds 1-10] [--design coin specialists noisy] [--setting NAME=JSON ...]
                                    [--rewards R ...] [--oracle] [--merge] [--out results/planted.json]
Default settings (`default_settings`): this suite's agent with and without its guard and gate, the paper's RL-KD
with each of its rewards, the remedies tried on them, and the states; --setting replaces them all. About 2-3 s a run on
2 cores; the full default is 2 designs x 10 seeds x (4 baselines + 22 settings) runs.
"""
