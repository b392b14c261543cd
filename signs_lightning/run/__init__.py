"""Running and persisting a fit: the ``signs`` CLI, layered configs, orchestration of teacher and student runs,
callbacks, checkpoint reading and writing, resume and process-group teardown."""
