"""Rendering edited faces: the edit model (the generator, its precision and device), the
render core that batches faces through it, and the full-resolution blend."""
