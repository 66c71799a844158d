"""Which SAM, from where, on which device."""
