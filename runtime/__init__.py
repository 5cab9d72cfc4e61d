"""Runtime: compile generated source into a cached cffi module and call it from Python."""
