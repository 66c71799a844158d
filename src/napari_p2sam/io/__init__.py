"""Reading images and masks, writing label images."""
