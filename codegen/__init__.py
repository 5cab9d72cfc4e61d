"""Code generation: spec file -> model IR (SymPy) -> optimised program -> C and NumPy source."""
