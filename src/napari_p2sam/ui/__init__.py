"""The napari dock widget (Qt) and the layer logic it shares with the scripting API (no Qt)."""
