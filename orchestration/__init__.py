"""Orchestration: what runs the stages, apart from them (no stage imports this package).

plan     what a parameter file will run, checked and estimated before anything runs (`make repro`'s first step)
cluster  the stages through submitit: job arrays in waves on SLURM, a pool of workers on one machine (pool)
study    every method over many seeds, round by round, committed to results/study/ (study_runs, study_report)
dvc_api  the DVC internals all of these use, in one module, checked against the pinned DVC
"""
