"""Training: run configs and presets, run folders, the worker process, the plan and the probes."""
