"""The napari docks (Qt): the one-shot segmentation widget and the scores dock."""
