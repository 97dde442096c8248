"""The agent: per-camera pipeline, runner, evidence."""
