"""Task builders named by `task._target_`: each turns a dataset into one family's task data."""
