"""Protocol vectors as data, shared by the core tests."""
