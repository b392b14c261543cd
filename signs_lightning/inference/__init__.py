"""Using a trained generator: the samplers, zero-shot editing, ``signs predict``'s writer, and the diffusers
pipeline and model card of an export."""
