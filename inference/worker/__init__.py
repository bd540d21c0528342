"""The worker process: `main` is the spawned child's entry (torch-free at import; torch loads inside the
child), `engine` serves requests on the loaded model with a KV cache per document."""
