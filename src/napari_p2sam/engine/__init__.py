"""The P²SAM engine: numpy and torch only, no Qt, no napari."""
