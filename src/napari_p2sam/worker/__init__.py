"""The model's own process and what crosses to it: model choice, run requests, per-frame updates (no Qt)."""
