"""napari layers to a stack job and results back to layers, shared by the dock and the scripting API (no Qt)."""
